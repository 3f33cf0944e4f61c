"""Tiny nnU-Net v2 model folders that TotalSegmentator runs offline, built at test time.

Recipe: ../shared/fixtures/totalseg/README.md. Each folder holds a 3-stage PlainConvUNet whose
weights are set by hand ("banded"): every voxel gets the class whose intensity centre lies
nearest to the voxel's own normalised intensity. The output is therefore deterministic and can be
checked against a numpy oracle (`oracle_labels`), while TotalSegmentator's real pipeline runs
around it (reorientation, resampling, cropping, sliding window, export workers).

Reusable by any test that needs TotalSegmentator weights: `build_weights(folder)`,
`write_totalseg_config(home)`, `InetGuard` (records and blocks every network attempt).
"""
from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# CTNormalization statistics written into the plans: normalised = (clip(HU, P005, P995) - MEAN) / STD.
CT_MEAN, CT_STD, CT_P005, CT_P995 = 100.0, 350.0, -1000.0, 1500.0

# Class centres in HU (CT) and in z-scores of the image (MR, ZScoreNormalization is per image).
# "background" is label 0; the others are class names of TotalSegmentator's class_map[task].
CT_BANDS_HU = {"background": -1000.0, "lung_lower_lobe_right": -750.0, "colon": -100.0,
               "liver": 60.0, "vertebrae_L1": 500.0}
MR_BANDS_Z = {"background": -1.0, "liver": 0.5, "spleen": 2.0}

# Logit bias for classes outside the bands: low enough never to win, small enough that nnU-Net's
# float16 accumulation (logits x Gaussian weights x 10) cannot overflow to inf.
ABSENT_CLASS_BIAS = -50.0
LEAKY_SLOPE = 0.01
PATCH = [48, 48, 48]


@dataclass(frozen=True)
class FixtureModel:
    folder: str          # DatasetNNN_* name TotalSegmentator looks up (TASK_ID_WEIGHTS_CONFIGS)
    trainer: str         # trainer part of the model folder name (TASK_CONFIGS)
    task: str            # class_map key giving the label order
    spacing_mm: float    # TotalSegmentator's `resample` for this model, so nnU-Net resamples no more
    modality: str        # "CT" or "MRI"


MODELS = {
    297: FixtureModel("Dataset297_TotalSegmentator_total_3mm_1559subj",
                      "nnUNetTrainer_4000epochs_NoMirroring", "total", 3.0, "CT"),
    298: FixtureModel("Dataset298_TotalSegmentator_total_6mm_1559subj",
                      "nnUNetTrainer_4000epochs_NoMirroring", "total", 6.0, "CT"),
    852: FixtureModel("Dataset852_TotalSegMRI_total_3mm_1088subj",
                      "nnUNetTrainer_2000epochs_NoMirroring", "total_mr", 3.0, "MRI"),
}


def normalised_ct(hu: float | np.ndarray) -> float | np.ndarray:
    return (np.clip(hu, CT_P005, CT_P995) - CT_MEAN) / CT_STD


def band_centres(model: FixtureModel) -> dict[int, float]:
    """Label id -> class centre in the network's normalised input units."""
    from totalsegmentator.map_to_binary import class_map

    ids = {name: idx for idx, name in class_map[model.task].items()}
    ids["background"] = 0
    if model.modality == "CT":
        return {ids[name]: float(normalised_ct(hu)) for name, hu in CT_BANDS_HU.items()}
    return {ids[name]: z for name, z in MR_BANDS_Z.items()}


def oracle_labels(values: np.ndarray, centres: dict[int, float]) -> np.ndarray:
    """What banded weights compute: per voxel, the label whose centre is nearest."""
    ids = np.array(sorted(centres))
    c = np.array([centres[i] for i in ids], dtype=np.float64)
    return ids[np.argmin(np.abs(np.asarray(values, np.float64)[..., None] - c), axis=-1)]


def _arch_kwargs(modality: str) -> dict:
    return {
        "n_stages": 3,
        "features_per_stage": [4, 8, 16],
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3]] * 3,
        "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
        "n_conv_per_stage": [1, 1, 1],
        "n_conv_per_stage_decoder": [1, 1],
        "conv_bias": True,
        # No normalisation layer: InstanceNorm would make each voxel's output depend on its tile.
        "norm_op": None,
        "norm_op_kwargs": None,
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }


def _plans(model: FixtureModel) -> dict:
    resampling = {
        f"resampling_fn_{kind}": "resample_data_or_seg_to_shape" for kind in ("data", "seg", "probabilities")
    }
    resampling.update({
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
    })
    spacing = [model.spacing_mm] * 3
    return {
        "dataset_name": model.folder,
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": spacing,
        "original_median_shape_after_transp": [100, 100, 100],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {
            "mean": CT_MEAN, "std": CT_STD, "median": CT_MEAN, "min": -1024.0, "max": 3071.0,
            "percentile_00_5": CT_P005, "percentile_99_5": CT_P995}},
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres",
            "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2,
            "patch_size": PATCH,
            "median_image_size_in_voxels": [100, 100, 100],
            "spacing": spacing,
            "normalization_schemes": ["CTNormalization" if model.modality == "CT" else "ZScoreNormalization"],
            "use_mask_for_norm": [False],
            **resampling,
            "batch_dice": True,
            "architecture": {
                "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": _arch_kwargs(model.modality),
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
            },
        }},
    }


def _dataset_json(model: FixtureModel) -> dict:
    from totalsegmentator.map_to_binary import class_map

    labels = {"background": 0}
    # nnU-Net ids are TotalSegmentator's class ids in fast mode, so they must run 1..N in its order.
    classes = class_map[model.task]
    assert sorted(classes) == list(range(1, len(classes) + 1)), model.task
    labels.update({classes[i]: i for i in sorted(classes)})
    return {"channel_names": {"0": model.modality}, "labels": labels, "numTraining": 1,
            "file_ending": ".nii.gz", "name": model.folder}


def _banded_network(plans: dict, n_classes: int, centres: dict[int, float]):
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    arch = plans["configurations"]["3d_fullres"]["architecture"]
    net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                 1, n_classes, allow_init=False, deep_supervision=False)
    scale = (1.0 + LEAKY_SLOPE) ** 2
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        # Stage 0 splits x into L(x) and L(-x) (L: LeakyReLU) with one centre tap each.
        stem = net.encoder.stages[0][0].convs[0].conv
        stem.weight[0, 0, 1, 1, 1] = 1.0
        stem.weight[1, 0, 1, 1, 1] = -1.0
        # The last decoder conv reads only the skip (channels F0.. of its input): L(x) - L(-x) = 1.01 x,
        # so deeper stages contribute nothing and the result depends on the voxel alone.
        last = net.decoder.stages[-1].convs[0].conv
        skip = net.decoder.transpconvs[-1].out_channels
        last.weight[0, skip + 0, 1, 1, 1] = 1.0
        last.weight[0, skip + 1, 1, 1, 1] = -1.0
        last.weight[1, skip + 0, 1, 1, 1] = -1.0
        last.weight[1, skip + 1, 1, 1, 1] = 1.0
        # logit_k = c_k * x - c_k^2 / 2: largest for the centre c_k nearest to x.
        seg = net.decoder.seg_layers[-1]
        seg.bias.fill_(ABSENT_CLASS_BIAS)
        for label, c in centres.items():
            seg.weight[label, 0, 0, 0, 0] = c / scale
            seg.weight[label, 1, 0, 0, 0] = -c / scale
            seg.bias[label] = -c * c / 2.0
    return net


def build_model(weights_dir: Path, task_id: int) -> Path:
    """One DatasetNNN folder with dataset.json, plans.json and fold_0/checkpoint_final.pth."""
    import torch

    model = MODELS[task_id]
    out = Path(weights_dir) / model.folder / f"{model.trainer}__nnUNetPlans__3d_fullres"
    (out / "fold_0").mkdir(parents=True, exist_ok=True)
    plans, dataset = _plans(model), _dataset_json(model)
    (out / "plans.json").write_text(json.dumps(plans, indent=1))
    (out / "dataset.json").write_text(json.dumps(dataset, indent=1))
    net = _banded_network(plans, len(dataset["labels"]), band_centres(model))
    torch.save({
        "network_weights": net.state_dict(),
        "init_args": {"configuration": "3d_fullres", "fold": 0, "plans": plans, "dataset_json": dataset},
        "trainer_name": model.trainer,
        "inference_allowed_mirroring_axes": None,
    }, out / "fold_0" / "checkpoint_final.pth")
    return out


def build_weights(weights_dir: Path, task_ids=(297, 298, 852)) -> Path:
    """The folders `total` fast, `total` + roi_subset and `total_mr` fast (+ roi_subset) need."""
    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    for task_id in task_ids:
        build_model(weights_dir, task_id)
    return weights_dir


def write_totalseg_config(home: Path, send_usage_stats: bool = False) -> Path:
    """TotalSegmentator's config.json as it must exist before the first call (stats off)."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.json"
    path.write_text(json.dumps({"totalseg_id": "totalseg_TESTTEST", "send_usage_stats": send_usage_stats,
                                "prediction_counter": 0, "statistics_disclaimer_shown": True}))
    return path


class InetGuard:
    """Blocks and records every internet connect and non-local DNS lookup in this process.

    Unix sockets stay allowed: nnU-Net's multiprocessing Manager talks over one.
    """

    LOCAL = {"localhost", "127.0.0.1", "::1", None}

    def __init__(self):
        self.attempts: list[str] = []

    def __enter__(self) -> "InetGuard":
        self._connect, self._connect_ex = socket.socket.connect, socket.socket.connect_ex
        self._getaddrinfo = socket.getaddrinfo
        guard = self

        def connect(sock, address, *a):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                guard.attempts.append(f"connect {address}")
                raise OSError(f"network blocked by test guard: connect {address}")
            return guard._connect(sock, address, *a)

        def connect_ex(sock, address, *a):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                guard.attempts.append(f"connect_ex {address}")
                raise OSError(f"network blocked by test guard: connect {address}")
            return guard._connect_ex(sock, address, *a)

        def getaddrinfo(host, *a, **k):
            if host not in guard.LOCAL:
                guard.attempts.append(f"getaddrinfo {host}")
                raise socket.gaierror(f"network blocked by test guard: lookup {host}")
            return guard._getaddrinfo(host, *a, **k)

        socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
        socket.getaddrinfo = getaddrinfo
        return self

    def __exit__(self, *exc) -> None:
        socket.socket.connect, socket.socket.connect_ex = self._connect, self._connect_ex
        socket.getaddrinfo = self._getaddrinfo
