"""The `totalseg` engine: TotalSegmentator through its Python API, offline-safe, on the scan's grid.

Where things live:
  config.json  $TOTALSEG_HOME_DIR if the user set it, else $PROSECTOR_HOME/totalseg
  weights      $TOTALSEG_WEIGHTS_PATH if set, else <config folder>/nnunet/results
A user who already runs TotalSegmentator keeps their weights (never downloaded again); everyone
else gets them under PROSECTOR_HOME. Before every call `send_usage_stats` is written into
TotalSegmentator's config.json as false, unless Prosector's config says
"totalseg_send_usage_stats": true: TotalSegmentator would otherwise report each run to its server.

Structure ids are TotalSegmentator class names. `total` (CT) and `total_mr` (MR) are the main
vocabulary; classes of its subtasks (tissue_types, liver_segments, ...) are found by name across
its class maps, or given explicitly as {"task": ..., "class": ...} in options.extra["tasks"].
Statistics are Prosector's own (prosector.measure); TotalSegmentator's are never used.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np

from prosector import config as prosector_config
from prosector.errors import InputError, RuntimeFailure
from prosector.geometry import align_to_grid
from prosector.mask import Mask
from prosector.models.base import Engine, Readiness, SegmentOptions
from prosector.scan import Scan

MAIN_TASK = {"ct": "total", "mr": "total_mr"}
# Tasks that take `roi_subset` (TotalSegmentator refuses it for the others).
ROI_TASKS = ("total", "total_mr")
# Class maps that are internal or superseded, never chosen by structure name alone.
HIDDEN_TASK_MARKERS = ("_LEGACY", "_auxiliary", "total_v1", "total_highres_test", "test")
ENV_KEYS = ("TOTALSEG_HOME_DIR", "TOTALSEG_WEIGHTS_PATH", "nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


# --- where TotalSegmentator's files live ---------------------------------------------------

@dataclass(frozen=True)
class WeightsLayout:
    home: Path      # holds TotalSegmentator's config.json
    weights: Path   # directly holds the DatasetNNN_* folders
    source: str     # which setting chose them, for messages


def weights_layout() -> WeightsLayout:
    env_home, env_weights = os.environ.get("TOTALSEG_HOME_DIR"), os.environ.get("TOTALSEG_WEIGHTS_PATH")
    home = Path(env_home).expanduser() if env_home else prosector_config.home() / "totalseg"
    weights = Path(env_weights).expanduser() if env_weights else home / "nnunet" / "results"
    source = "TOTALSEG_WEIGHTS_PATH" if env_weights else ("TOTALSEG_HOME_DIR" if env_home else "PROSECTOR_HOME")
    return WeightsLayout(home, weights, source)


def usage_stats_allowed() -> bool:
    """Only an explicit opt-in in Prosector's own config lets TotalSegmentator report runs."""
    return prosector_config.load_config().get("totalseg_send_usage_stats") is True


def write_usage_setting(home: Path, send: bool) -> Path:
    """Set `send_usage_stats` in TotalSegmentator's config.json, keeping its other keys."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.json"
    settings: dict = {}
    if path.is_file():
        try:
            settings = json.loads(path.read_text())
        except ValueError:
            settings = {}  # a broken file would make TotalSegmentator fail; rewrite it whole
    if not isinstance(settings, dict):
        settings = {}
    settings.setdefault("totalseg_id", "totalseg_" + os.urandom(4).hex().upper())
    settings.setdefault("prediction_counter", 0)
    settings["send_usage_stats"] = bool(send)
    # Silences its "sends anonymous usage statistics" print; our setting above is what decides.
    settings["statistics_disclaimer_shown"] = True
    path.write_text(json.dumps(settings, indent=4))
    return path


# --- TotalSegmentator's vocabulary ---------------------------------------------------------

def installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("totalsegmentator", "nnunetv2"))


@lru_cache(maxsize=1)
def class_maps() -> dict[str, dict[int, str]]:
    """{task: {label id: class name}} of the installed TotalSegmentator; empty if absent."""
    try:
        from totalsegmentator.map_to_binary import class_map
    except ImportError:
        return {}
    return {task: dict(labels) for task, labels in class_map.items()}


def task_modality(task: str) -> str:
    from totalsegmentator.registry import task_modality as modality_of
    return modality_of(task).lower()


@lru_cache(maxsize=1)
def _selectable_tasks() -> tuple[str, ...]:
    try:
        from totalsegmentator.map_tasks_config import TASK_CONFIGS
        from totalsegmentator.registry import TASKS
    except ImportError:
        return ()
    return tuple(t for t in TASKS if t in TASK_CONFIGS and t in class_maps()
                 and not any(marker in t for marker in HIDDEN_TASK_MARKERS))


@dataclass(frozen=True)
class Location:
    """Where one TotalSegmentator class comes from."""

    task: str
    cls: str


def locate(structure: str, modality: str | None = None) -> list[Location]:
    """Every (task, class) that names `structure`, the modality's main task first, then task order."""
    maps = class_maps()
    tasks = list(_selectable_tasks())
    main = [MAIN_TASK[modality]] if modality in MAIN_TASK else list(MAIN_TASK.values())
    ordered = [t for t in main if t in maps] + [t for t in tasks if t not in main]
    found = [Location(t, structure) for t in ordered if structure in maps[t].values()]
    if modality in MAIN_TASK:
        found = [loc for loc in found if task_modality(loc.task) == modality]
    return found


def label_ids(task: str, classes: list[str]) -> list[int]:
    by_name = {name: idx for idx, name in class_maps()[task].items()}
    return [by_name[c] for c in classes]


# --- which weight folders a run needs (mirrors python_api.totalsegmentator) ------------------

@dataclass(frozen=True)
class TaskRun:
    task: str
    fast: bool           # what is passed on: only tasks with a fast sub-mode take it
    roi_subset: bool

    def folders(self) -> list[str]:
        from totalsegmentator.map_tasks_config import TASK_CONFIGS, TASK_ID_WEIGHTS_CONFIGS

        def folder(task_id) -> str:
            info = TASK_ID_WEIGHTS_CONFIGS[task_id]
            rel = info.get("rel_path")
            return str(Path(rel) / info["foldername"]) if rel else info["foldername"]

        raw = TASK_CONFIGS[self.task]
        mode = raw["sub_modes"]["fast" if self.fast else "default"] if "sub_modes" in raw else raw
        ids = mode["task_id"] if isinstance(mode["task_id"], list) else [mode["task_id"]]
        needed = [folder(i) for i in ids]
        if self.task == "vertebrae_pp_refined":
            needed.append(folder(305))
        crop, crop_model = mode.get("crop"), mode.get("crop_model")
        if crop_model:
            needed += TaskRun(crop_model, False, False).folders()
        elif crop is not None or self.roi_subset:
            mr = self.task.endswith("_mr")
            if crop is not None and ("body_trunc" in crop or "body_extremities" in crop):
                needed.append(folder(300))
            else:
                needed.append(folder(852 if mr else (297 if mode.get("robust_crop") else 298)))
        return list(dict.fromkeys(needed))


def has_fast_mode(task: str) -> bool:
    from totalsegmentator.map_tasks_config import TASK_CONFIGS
    return "fast" in TASK_CONFIGS[task].get("sub_modes", {})


def needs_license(task: str) -> bool:
    from totalsegmentator.map_to_binary import commercial_models
    return task in commercial_models


def license_present(layout: WeightsLayout) -> bool:
    try:
        return bool(json.loads((layout.home / "config.json").read_text()).get("license_number"))
    except (OSError, ValueError, AttributeError):
        return False


# --- the engine ----------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch
    return bool(torch.cuda.is_available())


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


class TotalSegEngine(Engine):
    name = "totalseg"

    @property
    def cost(self) -> str:  # type: ignore[override]
        return "medium" if self.device() == "cuda" else "high"

    def vocabulary(self, modality: str) -> set[str]:
        task = MAIN_TASK.get(modality.lower())
        return set(class_maps().get(task, {}).values()) if task else set()

    def covers(self, structure: str, modality: str) -> bool:
        """Main vocabulary plus any subtask class of this modality (found by name)."""
        modality = modality.lower()
        return modality in MAIN_TASK and bool(class_maps()) and bool(locate(structure, modality))

    def device(self, requested: str = "auto") -> str:
        if requested == "cpu":
            return "cpu"
        return "cuda" if _cuda_available() else "cpu"

    def cache_key(self) -> str | None:
        layout = weights_layout()
        # The device decides the default resolution (fast on CPU), so it is part of what a result is.
        return f"{self.name}|{_version('TotalSegmentator')}|{layout.weights}|{self.device()}"

    # -- readiness --

    def readiness(self, modality: str | None = None, structures: list[str] | None = None,
                  fast: bool | None = None) -> Readiness:
        """Ready when the package imports and the weights of the needed tasks are on disk.

        Without arguments: ready when `total` (CT) or `total_mr` (MR) can run in the default mode.
        """
        if not installed() or not class_maps():
            return Readiness(False, "TotalSegmentator is not installed",
                             "pip install TotalSegmentator nnunetv2 (torch must import with torchvision)")
        layout = weights_layout()
        preference = True if fast is None and self.device() == "cpu" else fast
        if structures:
            try:
                runs = [TaskRun(task, resolution(task, preference, layout), False)
                        for task in _group_by_task(_resolve(structures, (modality or "ct").lower(), {}))]
            except InputError as err:
                return Readiness(False, str(err), "")
        elif modality:
            runs = ([TaskRun(MAIN_TASK[modality.lower()], resolution(MAIN_TASK[modality.lower()], preference, layout),
                             False)] if modality.lower() in MAIN_TASK else [])
            if not runs:
                return Readiness(False, f"TotalSegmentator does not segment {modality.upper()}", "")
        else:
            runs = [TaskRun(task, resolution(task, preference, layout), False) for task in MAIN_TASK.values()]
        problems = []
        for run in runs:
            missing = [f for f in run.folders() if not (layout.weights / f).is_dir()]
            if missing:
                problems.append((run, missing))
            elif needs_license(run.task) and not license_present(layout):
                problems.append((run, []))
        usable = [r for r in runs if r not in [p[0] for p in problems]]
        if not problems or (not structures and not modality and usable):
            note = f"weights in {layout.weights} (from {layout.source})"
            if problems:
                note += "; missing for " + ", ".join(_describe(r) for r, _ in problems)
            return Readiness(True, note)
        run, missing = problems[0]
        if not missing:
            return Readiness(False, f"task {run.task} needs a TotalSegmentator licence, none is set in "
                                    f"{layout.home / 'config.json'}",
                             "totalseg_set_license -l YOUR_LICENSE_NUMBER (free for non-commercial use)")
        folder = missing[0]
        return Readiness(False, f"TotalSegmentator weights for {_describe(run)} missing: "
                                f"{layout.weights / folder} (weights folder from {layout.source})",
                         download_fix(run, layout, folder))

    # -- segmentation --

    def segment(self, scan: Scan, structures: list[str], options: SegmentOptions | None = None) -> list[Mask]:
        options = options or SegmentOptions()
        where = str(scan.provenance.path) if scan.provenance else None
        structures = list(dict.fromkeys(structures))
        modality = _check_scan(scan, where)
        if not structures:
            return []
        if not installed() or not class_maps():
            raise RuntimeFailure("TotalSegmentator is not installed", hint="pip install TotalSegmentator nnunetv2")
        device = self._checked_device(options.device, where)
        requests = _resolve(structures, modality, options.extra.get("tasks") or {})
        layout = weights_layout()
        preference = _fast_preference(options, device)
        allow_download = options.extra.get("allow_download", True) is not False
        stats = usage_stats_allowed()
        image = _as_nifti(scan)
        groups = _group_by_task(requests)
        masks: dict[str, Mask] = {}
        for done, (task, classes) in enumerate(groups.items()):
            run = self._plan_run(task, classes, resolution(task, preference, layout), layout, options)
            if options.progress:
                options.progress(done / len(groups), f"totalseg: task {task}{' (fast)' if run.fast else ''} "
                                                     f"on {device} for {', '.join(classes)}")
            labels, info = self._run(image, run, classes, device, layout, stats, allow_download, options, where)
            on_grid = _on_scan_grid(labels, scan, task)
            for structure, locations in requests.items():
                if not any(loc.task == task for loc in locations):
                    continue
                ids = label_ids(task, [loc.cls for loc in locations if loc.task == task])
                part = np.isin(on_grid, ids)
                if structure in masks:  # a structure made of classes from several tasks
                    masks[structure].data |= part
                    masks[structure].provenance["runs"].append(info)
                    continue
                masks[structure] = Mask(name=structure, data=part, engine=self.name,
                                        label=structure.replace("_", " "),
                                        provenance={"engine": self.name, **info, "runs": [info],
                                                    "classes": [f"{loc.task}:{loc.cls}" for loc in locations]})
        if options.progress:
            options.progress(1.0, "totalseg: done")
        return [masks[s] for s in structures]

    def _checked_device(self, requested: str, where: str | None) -> str:
        requested = (requested or "auto").lower()
        if requested not in ("auto", "cpu", "cuda", "gpu"):
            raise InputError(f"unknown device {requested!r}; use auto, cpu or cuda", path=where)
        if requested in ("cuda", "gpu") and not _cuda_available():
            raise InputError("device cuda was requested but torch sees no CUDA GPU here",
                             hint="Use --device cpu (TotalSegmentator's fast mode runs on CPU).")
        return "cpu" if requested == "cpu" else self.device("auto")

    @staticmethod
    def _plan_run(task: str, classes: list[str], fast: bool, layout: WeightsLayout,
                  options: SegmentOptions) -> TaskRun:
        if task not in ROI_TASKS or options.extra.get("roi_subset") is False:
            return TaskRun(task, fast, False)
        with_roi = TaskRun(task, fast, True)
        # roi_subset adds a coarse crop model; without its weights the whole task gives the same classes.
        crop_missing = any(not (layout.weights / f).is_dir() for f in with_roi.folders())
        plain_present = all((layout.weights / f).is_dir() for f in TaskRun(task, fast, False).folders())
        return TaskRun(task, fast, False) if crop_missing and plain_present else with_roi

    def _run(self, image: nib.Nifti1Image, run: TaskRun, classes: list[str], device: str, layout: WeightsLayout,
             stats: bool, allow_download: bool, options: SegmentOptions, where: str | None):
        folders = run.folders()
        missing = [f for f in folders if not (layout.weights / f).is_dir()]
        if missing and not allow_download:
            raise RuntimeFailure(f"TotalSegmentator weights for {_describe(run)} missing: {layout.weights / missing[0]}",
                                 hint="Fix: " + download_fix(run, layout, missing[0]))
        if needs_license(run.task) and not license_present(layout):
            raise RuntimeFailure(f"task {run.task} needs a TotalSegmentator licence, none is set in "
                                 f"{layout.home / 'config.json'}",
                                 hint="Run totalseg_set_license -l YOUR_LICENSE_NUMBER (free for non-commercial use).")
        if missing:
            notice = (f"totalseg: downloading weights for {_describe(run)} into {layout.weights} "
                      f"(first use; TotalSegmentator fetches them from the internet)")
            if options.progress:
                options.progress(0.0, notice)
            else:
                print(notice, file=sys.stderr)
        existed = {p for p in (layout.weights, *(layout.weights / f for f in missing)) if p.exists()}
        try:
            write_usage_setting(layout.home, stats)
        except OSError as err:  # without this setting written, TotalSegmentator would report the run
            raise RuntimeFailure(f"cannot write TotalSegmentator's settings ({err.strerror or err})",
                                 path=layout.home / "config.json",
                                 hint="Make the folder writable or point TOTALSEG_HOME_DIR elsewhere.") from None
        started = time.perf_counter()
        output = io.StringIO()
        try:
            from totalsegmentator.python_api import totalsegmentator

            with _environment(layout), contextlib.redirect_stdout(output):
                seg = totalsegmentator(image, None, ml=True, task=run.task, fast=run.fast,
                                       roi_subset=classes if run.roi_subset else None,
                                       device="gpu" if device == "cuda" else "cpu", quiet=True,
                                       statistics=False, nr_thr_saving=1)
        except (Exception, SystemExit) as err:  # SystemExit: its licence check calls sys.exit
            _remove_new(layout, missing, existed)
            if missing:
                raise RuntimeFailure(
                    f"TotalSegmentator weights for {_describe(run)} are missing in {layout.weights / missing[0]} "
                    f"and could not be downloaded ({_one_line(err, output)})",
                    hint="Fix: " + download_fix(run, layout, missing[0])) from None
            raise RuntimeFailure(f"TotalSegmentator failed on task {run.task}: {_one_line(err, output)}",
                                 path=where) from None
        seconds = round(time.perf_counter() - started, 3)
        info = {"task": run.task, "fast": run.fast, "roi_subset": classes if run.roi_subset else None,
                "device": device, "seconds": seconds, "totalsegmentator_version": _version("TotalSegmentator"),
                "nnunetv2_version": _version("nnunetv2"), "weights_folder": str(layout.weights),
                "weights": folders, "downloaded": missing, "usage_stats_sent": stats}
        return seg, info


def download_fix(run: TaskRun, layout: WeightsLayout, folder: str) -> str:
    """The command that fetches the weights (it sends no usage statistics), and the offline way."""
    fast_names = {"total": "total_fast", "total_mr": "total_fast_mr", "total_v3": "total_v3_fast",
                  "body": "body_fast", "body_mr": "body_mr_fast"}
    name = fast_names.get(run.task, run.task) if run.fast else run.task
    env = f"TOTALSEG_HOME_DIR={layout.home}"
    if layout.source == "TOTALSEG_WEIGHTS_PATH":
        env += f" TOTALSEG_WEIGHTS_PATH={layout.weights}"
    return (f"{env} totalseg_download_weights -t {name} (where internet exists; a first segmentation run also "
            f"downloads them by itself); offline, copy the folder {folder} into {layout.weights}"
            + _elsewhere_hint(layout, folder))


def _describe(run: TaskRun) -> str:
    return f"task {run.task}{' (fast)' if run.fast else ''}{' with roi_subset' if run.roi_subset else ''}"


def _elsewhere_hint(layout: WeightsLayout, folder: str) -> str:
    """Point at TotalSegmentator's own default folder when the weights already sit there."""
    default_home = Path.home() / ".totalsegmentator"
    if layout.source == "PROSECTOR_HOME" and (default_home / "nnunet" / "results" / folder).is_dir():
        return f"; or reuse the ones in {default_home} with TOTALSEG_HOME_DIR={default_home}"
    return ""


def _check_scan(scan: Scan, where: str | None) -> str:
    modality = (scan.modality or "").lower()
    if modality not in MAIN_TASK:
        raise InputError(f"TotalSegmentator segments CT and MR, not {modality.upper() or 'an unknown modality'}",
                         path=where, hint="Give the modality (--modality ct|mr) if the file does not say it.")
    data = scan.data
    if scan.is_2d or data.ndim not in (3, 4) or (data.ndim == 4 and data.shape[3] != 1) or min(data.shape[:3]) < 2:
        raise InputError(f"TotalSegmentator needs one 3D volume, got shape {tuple(data.shape)}", path=where)
    return modality


def _resolve(structures: list[str], modality: str, explicit) -> dict[str, list[Location]]:
    """Structure id -> the TotalSegmentator classes that make it (union), checked against the class maps."""
    maps = class_maps()
    given: dict[str, list[Location]] = {}
    entries = explicit.items() if isinstance(explicit, dict) else [(None, e) for e in explicit]
    for structure, spec in entries:
        for item in (spec if isinstance(spec, list) else [spec]):
            if not isinstance(item, dict) or "task" not in item or "class" not in item:
                raise InputError(f"totalseg mapping must be {{'task': ..., 'class': ...}}, got {item!r}")
            task, cls = str(item["task"]), str(item["class"])
            if task not in maps or cls not in maps[task].values():
                raise InputError(f"TotalSegmentator has no class {cls!r} in task {task!r}")
            if task_modality(task) != modality:
                raise InputError(f"TotalSegmentator task {task} reads {task_modality(task).upper()}, "
                                 f"this scan is {modality.upper()}")
            given.setdefault(structure or item.get("structure") or cls, []).append(Location(task, cls))
    resolved: dict[str, list[Location]] = {}
    for structure in structures:
        if structure in given:
            resolved[structure] = given[structure]
            continue
        found = locate(structure, modality)
        if not found:
            other = [loc.task for loc in locate(structure)]
            if other:
                raise InputError(f"TotalSegmentator has {structure} only for "
                                 f"{task_modality(other[0]).upper()} (task {other[0]}), this scan is {modality.upper()}")
            raise InputError(f"TotalSegmentator has no class named {structure!r} for {modality.upper()}")
        resolved[structure] = [found[0]]
    return resolved


def _group_by_task(requests: dict[str, list[Location]]) -> dict[str, list[str]]:
    """Task -> its classes, so that each task runs once for all the structures it covers."""
    groups: dict[str, list[str]] = {}
    for locations in requests.values():
        for loc in locations:
            classes = groups.setdefault(loc.task, [])
            if loc.cls not in classes:
                classes.append(loc.cls)
    return groups


def _fast_preference(options: SegmentOptions, device: str) -> bool | None:
    """True/False is what the user asked for (extra["fast"], or options.fast); None: the GPU default.

    CPU defaults to the 3 mm fast models (minutes instead of tens of minutes).
    """
    explicit = options.extra.get("fast")
    if explicit is not None:
        return bool(explicit)
    return True if options.fast or device == "cpu" else None


def resolution(task: str, preference: bool | None, layout: WeightsLayout) -> bool:
    """The fast flag a task runs with. The GPU default (None) is full resolution, or the fast models
    when only their weights are on disk: offline they are what can run, and online it spares a
    silent download of the full-resolution set."""
    if not has_fast_mode(task):
        return False
    if preference is not None:
        return preference
    full_here = all((layout.weights / f).is_dir() for f in TaskRun(task, False, False).folders())
    fast_here = all((layout.weights / f).is_dir() for f in TaskRun(task, True, False).folders())
    return fast_here and not full_here


def _as_nifti(scan: Scan) -> nib.Nifti1Image:
    """The scan as an in-memory NIfTI on its own grid (TotalSegmentator reorients a copy itself)."""
    data = scan.data[..., 0] if scan.data.ndim == 4 else scan.data
    if data.dtype == np.float64:
        data = data.astype(np.float32)
    affine = np.asarray(scan.affine, dtype=float)
    image = nib.Nifti1Image(np.asarray(data), affine)
    header = scan.nifti_header if isinstance(scan.nifti_header, nib.Nifti1Header) else None
    qcode = int(header["qform_code"]) if header is not None else 1
    scode = int(header["sform_code"]) if header is not None else 1
    # Both forms carry the scan's affine: a file with only one set must not read differently downstream.
    image.set_qform(affine, code=qcode or 1)
    image.set_sform(affine, code=scode or 1)
    return image


def _on_scan_grid(seg: nib.Nifti1Image, scan: Scan, task: str) -> np.ndarray:
    """TotalSegmentator returns the input's grid; verified here rather than assumed."""
    try:
        return align_to_grid(np.asanyarray(seg.dataobj), seg.affine, scan.grid, what=f"TotalSegmentator's {task} output")
    except InputError as err:
        raise RuntimeFailure(str(err)) from None


@contextlib.contextmanager
def _environment(layout: WeightsLayout):
    """Point TotalSegmentator at our folders; put back what its setup_nnunet() leaves in os.environ."""
    saved = {key: os.environ.get(key) for key in ENV_KEYS}
    os.environ["TOTALSEG_HOME_DIR"] = str(layout.home)
    os.environ["TOTALSEG_WEIGHTS_PATH"] = str(layout.weights)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _remove_new(layout: WeightsLayout, missing: list[str], existed: set[Path]) -> None:
    """After a failed download, remove what it created, so no half-unpacked weights look present."""
    for folder in missing:
        path = layout.weights / folder
        if path.exists() and path not in existed:
            shutil.rmtree(path, ignore_errors=True)
    if layout.weights not in existed and layout.weights.is_dir() and not any(layout.weights.iterdir()):
        layout.weights.rmdir()


def _one_line(err: BaseException, output: io.StringIO) -> str:
    if isinstance(err, SystemExit):
        lines = [line.strip() for line in output.getvalue().splitlines() if line.strip()]
        return lines[-1] if lines else f"exited with status {err.code}"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__
