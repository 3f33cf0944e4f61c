"""DICOM series in, DICOM SEG out and back in, on the real 3-slice CT from dcmqi."""
from __future__ import annotations

import shutil
import warnings
import zipfile
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.pixels import pack_bits
from pydicom.uid import JPEG2000Lossless, RLELossless, generate_uid

from conftest import DATA
from prosector.errors import InputError
from prosector.exports.dicom_seg import read_dicom_seg, write_dicom_seg
from prosector.io import load_scan
from prosector.io.dicom import load_dicom_series
from prosector.mask import Mask

CT3 = DATA / "dcmqi_ct3slice"
SERIES = CT3 / "ct-3slice"
LIVER_SEG = CT3 / "liver.dcm"
LIVER_NRRD = CT3 / "liver_seg.nrrd"
SERIES_UID = "1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1"
LIVER_SCT = ("10200004", "SCT", "Liver")
LPS = np.diag([-1.0, -1.0, 1.0])  # RAS <-> LPS (its own inverse)


@pytest.fixture(scope="module")
def ct3():
    return load_dicom_series(SERIES)


@pytest.fixture(scope="module")
def liver(ct3):
    (mask,) = read_dicom_seg(LIVER_SEG, ct3)
    return mask


def _synthetic_series(folder: Path, z_positions, series_uid: str, description: str = "synthetic") -> list[Path]:
    """Single-slice copies of the real CT's first file at the given z, as a new series."""
    folder.mkdir(parents=True, exist_ok=True)
    template = pydicom.dcmread(SERIES / "01.dcm")
    written = []
    for number, z in enumerate(z_positions, start=1):
        ds = template.copy()
        ds.SeriesInstanceUID = series_uid
        ds.SeriesDescription = description
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = number
        x, y, _ = (float(v) for v in template.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, float(z)]
        path = folder / f"slice{number:03d}.dcm"
        ds.save_as(path)
        written.append(path)
    return written


# --- loading a series ---------------------------------------------------------------------------

def test_ct3slice_loads_as_a_512x512x3_ct_with_its_uids(ct3):
    header = pydicom.dcmread(SERIES / "01.dcm", stop_before_pixels=True)
    assert ct3.shape == (512, 512, 3)
    assert ct3.modality == "ct" and not ct3.is_2d
    assert ct3.data.dtype == np.int16  # integral rescale: HU kept exactly in 16 bits
    # HU: air outside the body near -1000, soft tissue around 0..100, bone below ~3000
    assert -3100 <= ct3.data.min() <= -1000
    assert 300 < ct3.data.max() < 3100
    body = ct3.data[150:350, 150:350, :]
    assert -200 < np.median(body) < 200
    p = ct3.provenance
    assert p.format == "dicom"
    assert p.series_uid == SERIES_UID == str(header.SeriesInstanceUID)
    assert p.study_uid == str(header.StudyInstanceUID)
    assert p.frame_of_reference_uid == str(header.FrameOfReferenceUID)
    # slices sorted along the normal (+z): the file with the lowest z comes first
    assert [Path(f).name for f in p.dicom_files] == ["03.dcm", "02.dcm", "01.dcm"]
    assert np.allclose(ct3.spacing, (0.810547, 0.810547, 1.0), atol=1e-5)
    assert ct3.orientation == "LPS"
    assert ct3.warnings == []


def test_affine_and_voxels_agree_with_simpleitk(ct3):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(SERIES)))
    image = reader.Execute()
    reference = sitk.GetArrayFromImage(image)  # (z, y, x) in SimpleITK's own index order
    rng = np.random.default_rng(0)
    corners = [(i, j, k) for i in (0, 511) for j in (0, 511) for k in (0, 2)]
    samples = corners + [tuple(int(v) for v in rng.integers(0, (512, 512, 3))) for _ in range(40)]
    for ijk in samples:
        world_ras = ct3.grid.world(np.array(ijk))
        world_lps = LPS @ world_ras
        index = np.array(image.TransformPhysicalPointToContinuousIndex(tuple(world_lps)))
        assert np.allclose(index, np.round(index), atol=1e-3), (ijk, index)
        x, y, z = (int(v) for v in np.round(index))
        assert np.allclose(image.TransformIndexToPhysicalPoint((x, y, z)), world_lps, atol=1e-3)
        assert ct3.data[ijk] == reference[z, y, x], ijk


def _oblique_series(folder: Path) -> None:
    """An oblique near-sagittal series with unequal row and column spacing: no axis is trivial."""
    folder.mkdir()
    angle = np.radians(20)
    row_cos = np.array([0.0, np.cos(angle), np.sin(angle)])
    col_cos = np.array([0.0, np.sin(angle), -np.cos(angle)])
    normal = np.cross(row_cos, col_cos)
    template = pydicom.dcmread(SERIES / "01.dcm")
    series_uid = generate_uid()
    for number in range(4):
        ds = template.copy()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.ImageOrientationPatient = [float(v) for v in np.concatenate([row_cos, col_cos])]
        ds.PixelSpacing = [0.8, 0.6]  # between rows, between columns
        ds.ImagePositionPatient = [float(v) for v in np.array([10.0, -20.0, 30.0]) + 2.5 * number * normal]
        ds.save_as(folder / f"{3 - number}.dcm")  # file names against slice order


def test_an_oblique_series_with_unequal_spacing_agrees_with_simpleitk(tmp_path):
    _oblique_series(tmp_path / "oblique")
    scan = load_dicom_series(tmp_path / "oblique")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "oblique")))
    image = reader.Execute()
    assert np.allclose(scan.spacing, (0.6, 0.8, 2.5))  # i along a row: column spacing first
    reference = sitk.GetArrayFromImage(image)
    for ijk in [(0, 0, 0), (511, 0, 0), (0, 511, 0), (0, 0, 3), (511, 511, 3), (100, 300, 2)]:
        world_lps = LPS @ scan.grid.world(np.array(ijk))
        index = np.array(image.TransformPhysicalPointToContinuousIndex(tuple(world_lps)))
        assert np.allclose(index, np.round(index), atol=1e-3), (ijk, index)
        x, y, z = (int(v) for v in np.round(index))
        assert scan.data[ijk] == reference[z, y, x], ijk


def test_folder_and_zip_give_identical_scans(ct3, tmp_path):
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(SERIES.iterdir()):
            zf.write(file, f"export/ct/{file.name}")
        zf.writestr("export/README.txt", "not a DICOM file")
    before = set(tmp_path.iterdir())
    zipped = load_dicom_series(archive)
    assert set(tmp_path.iterdir()) == before  # nothing extracted beside the archive
    assert np.array_equal(zipped.data, ct3.data) and zipped.data.dtype == ct3.data.dtype
    assert np.array_equal(zipped.affine, ct3.affine)
    assert zipped.provenance.series_uid == ct3.provenance.series_uid
    assert zipped.provenance.dicom_files[0] == f"{archive.resolve()}::export/ct/03.dcm"
    # the same entry point users reach from the CLI
    assert np.array_equal(load_scan(archive).data, ct3.data)
    # DICOM SEG export re-reads the source instances from inside the archive
    (liver,) = read_dicom_seg(LIVER_SEG, zipped)
    write_dicom_seg(zipped, [liver], tmp_path / "seg.dcm")
    (back,) = read_dicom_seg(tmp_path / "seg.dcm", zipped)
    assert np.array_equal(back.data, liver.data)


def test_mixed_series_takes_the_largest_and_says_so(ct3, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(SERIES, folder / "ct")
    shutil.copy(LIVER_SEG, folder / "liver_seg.dcm")  # a DICOM SEG is not an image: skipped
    (folder / "notes.txt").write_text("scanned on Tuesday")
    other_uid = generate_uid()
    _synthetic_series(folder / "other", [10.0, 12.5], other_uid, description="second series")

    scan = load_dicom_series(folder)
    assert scan.provenance.series_uid == SERIES_UID
    assert np.array_equal(scan.data, ct3.data)
    assert len(scan.warnings) == 1
    warning = scan.warnings[0]
    assert f"using the largest, SeriesInstanceUID {SERIES_UID} (3 slices)" in warning
    assert other_uid in warning and "2 slices, 'second series'" in warning

    chosen = load_dicom_series(folder, series_uid=other_uid)
    assert chosen.shape == (512, 512, 2) and chosen.warnings == []
    assert chosen.provenance.series_uid == other_uid
    assert np.allclose(chosen.grid.world(np.array([0, 0, 1]))[2], 12.5)

    with pytest.raises(InputError) as err:
        load_dicom_series(folder, series_uid="1.2.3.4")
    message = err.value.user_message()
    assert "series 1.2.3.4 not found" in message
    assert f"{SERIES_UID} (3 slices)" in message and f"{other_uid} (2 slices, 'second series')" in message


def test_a_missing_slice_is_an_error_naming_the_gap(tmp_path):
    folder = tmp_path / "gappy"
    files = _synthetic_series(folder, [-130.0, -127.5, -125.0, -122.5, -120.0], generate_uid())
    files[2].unlink()  # drop the middle slice at z = -125
    with pytest.raises(InputError) as err:
        load_dicom_series(folder)
    message = err.value.user_message()
    assert "missing slice" in message
    assert "5.000 mm between the slices at -127.500 and -122.500 mm" in message
    assert "expected a slice at ImagePositionPatient (-235.200, -226.800, -125.000)" in message
    assert str(folder) in message


def test_the_complete_synthetic_series_loads_with_its_step(tmp_path):
    files = _synthetic_series(tmp_path / "whole", [-120.0, -130.0, -125.0], generate_uid())
    scan = load_dicom_series(tmp_path / "whole")
    assert scan.shape == (512, 512, 3)
    assert np.allclose(scan.affine[:3, 2], [0, 0, 5.0])
    assert np.allclose(scan.affine[2, 3], -130.0)
    assert [Path(f).name for f in scan.provenance.dicom_files] == [files[1].name, files[2].name, files[0].name]


def test_a_tilted_gantry_series_keeps_its_sheared_grid(tmp_path):
    files = _synthetic_series(tmp_path / "tilt", [-130.0, -127.5, -125.0], generate_uid())
    for number, file in enumerate(files):  # each slice 0.5 mm further posterior: a tilted gantry
        ds = pydicom.dcmread(file)
        ds.ImagePositionPatient = [-235.2, -226.8 + 0.5 * number, -130.0 + 2.5 * number]
        ds.save_as(file)
    scan = load_dicom_series(tmp_path / "tilt")
    assert np.allclose(scan.affine[:3, 2], [0.0, -0.5, 2.5])  # LPS step (0, 0.5, 2.5) in RAS+
    for k in range(3):  # voxel (0, 0, k) is exactly where each file says its first pixel is
        assert np.allclose(LPS @ scan.grid.world(np.array([0, 0, k])), [-235.2, -226.8 + 0.5 * k, -130.0 + 2.5 * k])
    assert any("gantry tilt" in w for w in scan.warnings)


def test_duplicate_positions_inconsistent_planes_and_broken_files_are_input_errors(tmp_path):
    dup = tmp_path / "dup"
    _synthetic_series(dup, [-120.0, -120.0, -125.0], generate_uid())
    with pytest.raises(InputError, match="duplicate slice position"):
        load_dicom_series(dup)

    tilted = tmp_path / "tilted"
    files = _synthetic_series(tilted, [-120.0, -125.0, -130.0], generate_uid())
    ds = pydicom.dcmread(files[1])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # a coronal localizer among axial slices
    ds.save_as(files[1])
    with pytest.raises(InputError, match="inconsistent ImageOrientationPatient"):
        load_dicom_series(tilted)

    resized = tmp_path / "spacing"
    files = _synthetic_series(resized, [-120.0, -125.0, -130.0], generate_uid())
    ds = pydicom.dcmread(files[2])
    ds.PixelSpacing = [0.9, 0.9]
    ds.save_as(files[2])
    with pytest.raises(InputError, match="inconsistent PixelSpacing"):
        load_dicom_series(resized)

    close = tmp_path / "close"
    _synthetic_series(close, [-120.0, -125.0, -125.5, -130.0, -135.0], generate_uid())
    with pytest.raises(InputError, match="irregular slice spacing"):
        load_dicom_series(close)

    corrupt = tmp_path / "corrupt"
    files = _synthetic_series(corrupt, [-120.0, -125.0], generate_uid())
    files[0].write_bytes(files[0].read_bytes()[:20000])  # header intact, pixel data cut short
    with pytest.raises(InputError, match="cannot read the pixel data") as err:
        load_dicom_series(corrupt)
    assert files[0].name in str(err.value)

    empty = tmp_path / "no_dicom"
    empty.mkdir()
    (empty / "a.txt").write_text("hello")
    with pytest.raises(InputError, match="no DICOM images found"):
        load_dicom_series(empty)


def test_old_files_without_preamble_or_file_meta_still_load(ct3, tmp_path):
    bare = tmp_path / "no_preamble"
    files = _synthetic_series(bare, [-120.0, -125.0], generate_uid())
    for file in files:  # old exports: the bare dataset, without preamble and file meta group
        raw = file.read_bytes()
        meta_length = int.from_bytes(raw[140:144], "little")  # value of (0002,0000) after 'DICM'
        file.write_bytes(raw[144 + meta_length:])
    scan = load_dicom_series(bare)
    assert scan.shape == (512, 512, 2)
    assert np.array_equal(scan.data[:, :, 1], ct3.data[:, :, 2])  # the copies carry 01.dcm's pixels


def test_an_enhanced_multiframe_ct_loads_like_the_classic_series_and_takes_a_seg(ct3, liver, tmp_path):
    legacy = [pydicom.dcmread(f) for f in sorted(SERIES.iterdir())]
    for ds in legacy:
        if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
            del ds.SpecificCharacterSet  # empty in these files; highdicom wants it absent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # highdicom's doubts about the source's patient name
        enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(legacy, hd.UID(), 7, hd.UID(), 1)
    # its frames run from the top slice down: the loader must sort them
    assert float(enhanced.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient[2]) > -127
    path = tmp_path / "enhanced.dcm"
    enhanced.save_as(path)
    scan = load_dicom_series(path)
    assert np.array_equal(scan.data, ct3.data) and np.array_equal(scan.affine, ct3.affine)
    assert scan.provenance.dicom_files == [str(path.resolve())] * 3
    (placed,) = read_dicom_seg(LIVER_SEG, scan)
    assert np.array_equal(placed.data, liver.data)
    write_dicom_seg(scan, [liver], tmp_path / "seg.dcm")
    (back,) = read_dicom_seg(tmp_path / "seg.dcm", scan)
    assert np.array_equal(back.data, liver.data)
    written = pydicom.dcmread(tmp_path / "seg.dcm")
    for groups in written.PerFrameFunctionalGroupsSequence:  # each frame cites the enhanced frame at its position
        source = groups.DerivationImageSequence[0].SourceImageSequence[0]
        assert source.ReferencedSOPInstanceUID == enhanced.SOPInstanceUID
        frame = enhanced.PerFrameFunctionalGroupsSequence[int(source.ReferencedFrameNumber) - 1]
        assert np.allclose([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient],
                           [float(v) for v in groups.PlanePositionSequence[0].ImagePositionPatient], atol=1e-4)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "jpeg2000"])
def test_compressed_series_decode_to_the_same_voxels(ct3, tmp_path, syntax):
    # RLE decodes with pydicom alone; JPEG 2000 (like JPEG lossless in PACS exports) needs pylibjpeg
    for file in sorted(SERIES.iterdir()):
        ds = pydicom.dcmread(file)
        ds.compress(syntax)
        ds.save_as(tmp_path / file.name)
    scan = load_dicom_series(tmp_path)
    assert np.array_equal(scan.data, ct3.data) and np.array_equal(scan.affine, ct3.affine)


def test_a_radiograph_without_patient_geometry_is_a_flagged_2d_image(tmp_path):
    ds = pydicom.dcmread(SERIES / "01.dcm")
    ds.Modality = "DX"
    del ds.ImagePositionPatient, ds.ImageOrientationPatient
    ds.PatientOrientation = ["L", "F"]  # rows run toward the patient's left, columns toward the feet
    ds.save_as(tmp_path / "chest.dcm")
    scan = load_dicom_series(tmp_path / "chest.dcm")
    assert scan.is_2d and scan.modality == "xray" and scan.shape == (512, 512, 1)
    assert scan.orientation[:2] == "LI"  # i toward the patient's left, j toward the feet (RAS+ world)
    assert any("PatientOrientation" in w for w in scan.warnings)


def test_modality_from_the_tag_and_a_contradicting_override_warns():
    scan = load_dicom_series(SERIES, modality="mr")
    assert scan.modality == "mr"
    assert any("Modality tag says CT but MR was requested" in w for w in scan.warnings)


# --- DICOM SEG ----------------------------------------------------------------------------------

def _nrrd_on_grid(path: Path, grid) -> np.ndarray:
    """A NRRD label volume mapped voxel by voxel onto `grid`, asserting the voxel centres coincide."""
    image = sitk.ReadImage(str(path))
    labels = sitk.GetArrayFromImage(image)  # (z, y, x)
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in grid.shape), indexing="ij"), axis=-1).reshape(-1, 3)
    world_lps = grid.world(ijk) @ LPS.T
    direction = np.array(image.GetDirection()).reshape(3, 3)
    to_index = np.linalg.inv(direction * np.array(image.GetSpacing()))
    index = (world_lps - np.array(image.GetOrigin())) @ to_index.T
    rounded = np.round(index).astype(int)
    assert np.max(np.abs(index - rounded) * np.array(image.GetSpacing())) < 1e-3  # the same voxel centres
    assert np.all(rounded >= 0) and np.all(rounded < np.array(image.GetSize()))
    return labels[rounded[:, 2], rounded[:, 1], rounded[:, 0]].reshape(grid.shape)


def test_liver_seg_lands_on_the_ct_grid_and_matches_the_nrrd(ct3, liver):
    reference = _nrrd_on_grid(LIVER_NRRD, ct3.grid) > 0
    assert liver.data.shape == ct3.shape
    dice = 2 * np.logical_and(liver.data, reference).sum() / (liver.data.sum() + reference.sum())
    assert dice >= 0.99, dice
    assert liver.name == "Liver" and liver.engine == "precomputed"
    assert liver.provenance["segment_number"] == 1
    assert liver.provenance["property_type"] == {"value": "T-62000", "scheme": "SRT", "meaning": "Liver"}
    # the liver lies on the patient's right, which is +x in RAS+ world coordinates
    centroid = ct3.grid.world(np.argwhere(liver.data).mean(axis=0))
    assert centroid[0] > 40
    assert all(liver.data[:, :, k].any() for k in range(3))


def test_write_then_read_dicom_seg_gives_identical_voxels_and_the_code(ct3, liver, tmp_path):
    out = tmp_path / "liver_prosector.dcm"
    warnings = write_dicom_seg(ct3, [liver], out, codes=lambda name: LIVER_SCT if name == "Liver" else None)
    assert warnings == []
    (back,) = read_dicom_seg(out, ct3)
    assert np.array_equal(back.data, liver.data)
    assert back.name == "Liver"
    assert back.provenance["property_type"] == dict(zip(("value", "scheme", "meaning"), LIVER_SCT))
    assert back.provenance["snomed_code"] == "10200004"
    assert back.provenance["property_category"]["value"] == "123037004"
    written = pydicom.dcmread(out)
    assert written.FrameOfReferenceUID == ct3.provenance.frame_of_reference_uid
    referenced = {item.ReferencedSOPInstanceUID
                  for series in written.ReferencedSeriesSequence for item in series.ReferencedInstanceSequence}
    sources = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in ct3.provenance.dicom_files}
    assert referenced == sources
    assert not list(tmp_path.glob(".*part"))  # no temporary file left beside the output


def test_overlapping_and_empty_masks(ct3, liver, tmp_path):
    overlap = np.zeros(ct3.shape, dtype=bool)
    ii, jj, kk = np.argwhere(liver.data)[len(np.argwhere(liver.data)) // 2]
    overlap[ii - 10:ii + 10, jj - 5:jj + 15, :] = True  # overlaps the liver: needs stacked segments
    masks = [liver, Mask("probe", overlap, "classical"), Mask("brain", np.zeros(ct3.shape, bool), "totalseg")]
    warnings = write_dicom_seg(ct3, masks, tmp_path / "three.dcm")
    assert warnings == ["brain: empty (not in the field of view), left out of the DICOM SEG"]
    back = read_dicom_seg(tmp_path / "three.dcm", ct3)
    assert [m.name for m in back] == ["Liver", "probe"]
    assert np.array_equal(back[0].data, liver.data) and np.array_equal(back[1].data, overlap)
    assert back[1].provenance["property_type"]["value"] == "91723000"  # no code given: generic anatomy
    with pytest.raises(InputError, match="every mask is empty"):
        write_dicom_seg(ct3, masks[2:], tmp_path / "none.dcm")
    assert not (tmp_path / "none.dcm").exists()


def _reverse_and_flip_frames(source: Path, target: Path) -> None:
    """Rewrite a BINARY SEG with frames in reverse order, each flipped top-to-bottom."""
    ds = pydicom.dcmread(source)
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    per_frame = list(ds.PerFrameFunctionalGroupsSequence)
    shared = ds.SharedFunctionalGroupsSequence[0]
    row_cos, col_cos = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float).reshape(2, 3)
    row_spacing = float(shared.PixelMeasuresSequence[0].PixelSpacing[0])
    for groups in per_frame:
        position = np.array(groups.PlanePositionSequence[0].ImagePositionPatient, float)
        groups.PlanePositionSequence[0].ImagePositionPatient = list(position + col_cos * row_spacing * (ds.Rows - 1))
    orientation = list(row_cos) + list(-col_cos)
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = orientation
    ds.PerFrameFunctionalGroupsSequence = per_frame[::-1]
    ds.PixelData = pack_bits(np.ascontiguousarray(frames[::-1, ::-1, :]))
    ds.save_as(target)


def _transpose_frames(source: Path, target: Path) -> None:
    """Rewrite a BINARY SEG with rows and columns swapped (the same voxels, the other way round)."""
    ds = pydicom.dcmread(source)
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    shared = ds.SharedFunctionalGroupsSequence[0]
    iop = [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient]
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = iop[3:] + iop[:3]
    spacing = list(shared.PixelMeasuresSequence[0].PixelSpacing)
    shared.PixelMeasuresSequence[0].PixelSpacing = spacing[::-1]
    ds.Rows, ds.Columns = ds.Columns, ds.Rows
    ds.PixelData = pack_bits(np.ascontiguousarray(frames.transpose(0, 2, 1)))
    ds.save_as(target)


def _shift_frames(source: Path, target: Path, shift_lps) -> None:
    ds = pydicom.dcmread(source)
    for groups in ds.PerFrameFunctionalGroupsSequence:
        position = np.array(groups.PlanePositionSequence[0].ImagePositionPatient, float)
        groups.PlanePositionSequence[0].ImagePositionPatient = list(position + np.asarray(shift_lps))
    ds.save_as(target)


def test_frames_are_placed_by_position_not_order_or_orientation(ct3, liver, tmp_path):
    written = tmp_path / "liver.dcm"
    write_dicom_seg(ct3, [liver], written)
    flipped = tmp_path / "liver_flipped.dcm"
    _reverse_and_flip_frames(written, flipped)
    (back,) = read_dicom_seg(flipped, ct3)
    assert np.array_equal(back.data, liver.data)
    (original,) = read_dicom_seg(LIVER_SEG, ct3)  # dcmqi wrote its frames from the top slice down
    assert np.array_equal(original.data, liver.data)
    transposed = tmp_path / "liver_transposed.dcm"
    _transpose_frames(written, transposed)
    (back,) = read_dicom_seg(transposed, ct3)
    assert np.array_equal(back.data, liver.data)


def test_frames_shifted_by_whole_voxels_land_shifted_and_never_off_the_grid(ct3, tmp_path):
    edge = np.zeros(ct3.shape, dtype=bool)
    edge[0:10, 300:320, 1] = True  # touches the i = 0 border of the grid
    written = tmp_path / "edge.dcm"
    write_dicom_seg(ct3, [Mask("edge", edge, "classical")], written)
    pixel = float(pydicom.dcmread(SERIES / "01.dcm").PixelSpacing[1])
    # LPS +x is the row direction, i.e. +i: one voxel further along i
    _shift_frames(written, tmp_path / "plus.dcm", [pixel, 0, 0])
    (moved,) = read_dicom_seg(tmp_path / "plus.dcm", ct3)
    assert np.array_equal(moved.data, np.roll(edge, 1, axis=0))
    _shift_frames(written, tmp_path / "minus.dcm", [-pixel, 0, 0])
    with pytest.raises(InputError, match="outside the scan's grid"):
        read_dicom_seg(tmp_path / "minus.dcm", ct3)
    _shift_frames(written, tmp_path / "below.dcm", [0, 0, -2.0])  # slice 1 -> slice -1
    with pytest.raises(InputError, match="outside the scan's grid"):
        read_dicom_seg(tmp_path / "below.dcm", ct3)


def _foreign_seg(ct3, pixels: np.ndarray, segmentation_type: str, labels: list[str], path: Path) -> None:
    """A SEG written straight with highdicom (not by Prosector), frame k on the k-th source file."""
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in ct3.provenance.dicom_files]
    for ds in sources:
        if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
            del ds.SpecificCharacterSet
    descriptions = [hd.seg.SegmentDescription(number, label, hd.sr.CodedConcept("91723000", "SCT", "Anatomical structure"),
                                              hd.sr.CodedConcept("10200004", "SCT", "Liver"), "MANUAL")
                    for number, label in enumerate(labels, start=1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seg = hd.seg.Segmentation(sources, pixels, segmentation_type, descriptions, hd.UID(), 1, hd.UID(), 1,
                                  "test", "test", "1", "1")
    seg.save_as(path)


def test_fractional_and_labelmap_segs_from_other_tools(ct3, tmp_path):
    probability = np.zeros((3, 512, 512), np.float32)  # (frame k, row j, column i)
    probability[1, 100:200, 150:300] = 0.7
    probability[1, 100:200, 300:320] = 0.3  # below one half: not the structure
    probability[2, 10:20, 10:20] = 0.5
    _foreign_seg(ct3, probability, "FRACTIONAL", ["blob"], tmp_path / "fractional.dcm")
    (blob,) = read_dicom_seg(tmp_path / "fractional.dcm", ct3)
    assert np.array_equal(blob.data, (probability >= 0.5).transpose(2, 1, 0))

    labels = np.zeros((3, 512, 512), np.uint8)
    labels[1, 100:200, 150:300] = 1
    labels[2, 10:20, 10:20] = 2
    _foreign_seg(ct3, labels, "LABELMAP", ["first", "second"], tmp_path / "labelmap.dcm")
    masks = read_dicom_seg(tmp_path / "labelmap.dcm", ct3)
    assert [m.name for m in masks] == ["first", "second"]  # the background entry is no structure
    for number, mask in enumerate(masks, start=1):
        assert np.array_equal(mask.data, (labels == number).transpose(2, 1, 0))


def test_a_seg_off_the_grid_or_from_another_frame_of_reference_is_refused(ct3, liver, tmp_path):
    written = tmp_path / "liver.dcm"
    write_dicom_seg(ct3, [liver], written)
    ds = pydicom.dcmread(written)
    for groups in ds.PerFrameFunctionalGroupsSequence:
        position = groups.PlanePositionSequence[0].ImagePositionPatient
        groups.PlanePositionSequence[0].ImagePositionPatient = [float(position[0]) + 0.4, position[1], position[2]]
    ds.save_as(tmp_path / "shifted.dcm")
    with pytest.raises(InputError, match="does not lie on the scan's grid"):
        read_dicom_seg(tmp_path / "shifted.dcm", ct3)

    ds = pydicom.dcmread(written)
    ds.FrameOfReferenceUID = generate_uid()
    ds.save_as(tmp_path / "elsewhere.dcm")
    with pytest.raises(InputError, match="frame of reference"):
        read_dicom_seg(tmp_path / "elsewhere.dcm", ct3)

    with pytest.raises(InputError, match="not a DICOM SEG"):
        read_dicom_seg(SERIES / "01.dcm", ct3)


def test_dicom_seg_needs_a_dicom_scan(liver):
    nifti = load_scan(DATA / "totalsegmentator" / "example_ct_sm.nii.gz")
    mask = Mask("liver", np.ones(nifti.shape[:3], bool), "precomputed")
    with pytest.raises(InputError, match="DICOM SEG needs DICOM input"):
        write_dicom_seg(nifti, [mask], Path("/nonexistent/should_not_be_written.dcm"))
