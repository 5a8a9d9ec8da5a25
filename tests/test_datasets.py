"""Dataset readers on tiny synthetic copies of each official layout, and the evaluation crop."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from segtool.data.readers import (CubReader, DatasetError, FlowersReader, FolderReader, IsicReader, Sample,
                              open_dataset)
from segtool.evaluation.protocol import iem_crop

H, W = 30, 40


def _image(seed: int, height: int = H, width: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(path: Path, array: np.ndarray, format: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=format)
    return path


def _half_mask(height: int = H, width: int = W) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[:, : width // 2] = True
    return mask


# ----------------------------------------------------------------------------- Flowers-102

FLOWER_IDS = [3, 1, 2]


def _segmim() -> tuple[np.ndarray, np.ndarray]:
    """A segmim picture and the mask the protocol rule must decode from it."""
    segmim = np.full((H, W, 3), (200, 120, 60), dtype=np.uint8)   # flower
    expected = np.ones((H, W), dtype=bool)
    for column, colour in enumerate([(0, 0, 254), (0, 90, 90), (90, 0, 90), (90, 90, 254), (0, 0, 255)]):
        segmim[:, column] = colour
        expected[:, column] = False
    segmim[:, 5] = (90, 90, 253)   # near the background blue but not it: foreground
    return segmim, expected


@pytest.fixture
def flowers_root(tmp_path) -> Path:
    root = tmp_path / "flowers102"
    segmim, _ = _segmim()
    for i in (1, 2, 3, 4):
        _save(root / "jpg" / f"image_{i:05d}.jpg", _image(i), "JPEG")
        # PNG bytes under the official .jpg name: lossless, so the decoding rule is tested exactly.
        _save(root / "segmim" / f"segmim_{i:05d}.jpg", segmim, "PNG")
    scipy.io.savemat(root / "setid.mat", {"trnid": np.array([FLOWER_IDS], dtype=np.uint16),
                                          "valid": np.array([[4]], dtype=np.uint16),
                                          "tstid": np.array([[4]], dtype=np.uint16)})
    return root


def test_flowers_test_split_is_trnid_in_file_order(flowers_root):
    reader = open_dataset("flowers", flowers_root)
    assert isinstance(reader, FlowersReader) and reader.name == "flowers"
    samples = reader.samples()
    assert [s.id for s in samples] == ["image_00003", "image_00001", "image_00002"]
    assert samples[0] == Sample("image_00003", flowers_root / "jpg" / "image_00003.jpg",
                                flowers_root / "segmim" / "segmim_00003.jpg")
    assert reader.split_source.endswith("setid.mat")


def test_flowers_mask_rule(flowers_root):
    reader = open_dataset("flowers", flowers_root)
    image, mask = reader.load(reader.samples()[0])
    assert image.dtype == np.uint8 and image.shape == (H, W, 3)
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, _segmim()[1])


def test_flowers_without_setid_uses_shipped_ids(flowers_root):
    (flowers_root / "setid.mat").unlink()
    reader = FlowersReader(flowers_root)
    assert "shipped" in reader.split_source
    assert len(reader.test_ids) == 1020 and reader.test_ids[:3] == [6765, 6755, 6768]
    with pytest.raises(DatasetError, match=r"2040 Flowers-102 test file\(s\) missing: jpg/image_06765.jpg"):
        reader.samples()


def test_flowers_wrong_layout_names_missing_folder(flowers_root):
    for path in (flowers_root / "segmim").iterdir():
        path.unlink()
    (flowers_root / "segmim").rmdir()
    with pytest.raises(DatasetError, match=r"not a Flowers-102 layout: missing segmim/ \(expected jpg/, segmim/"):
        open_dataset("flowers", flowers_root)


def test_flowers_missing_image_is_named(flowers_root):
    (flowers_root / "jpg" / "image_00001.jpg").unlink()
    with pytest.raises(DatasetError, match="1 Flowers-102 test file.*jpg/image_00001.jpg"):
        open_dataset("flowers", flowers_root).samples()


# ----------------------------------------------------------------------------- CUB-200-2011

CUB_IMAGES = ["001.Albatross/Albatross_0001_1", "001.Albatross/Albatross_0002_2", "002.Wren/Wren_0003_3",
              "002.Wren/Wren_0004_4"]


def _cub_mask() -> tuple[np.ndarray, np.ndarray]:
    soft = np.zeros((H, W), dtype=np.uint8)
    soft[:, 10:20] = 127    # half the annotators: not foreground
    soft[:, 20:30] = 128
    soft[:, 30:] = 255
    return soft, soft > 127


def _write_cub(cub_dir: Path, segmentations: Path) -> None:
    lines = []
    for number, relative in enumerate(CUB_IMAGES, 1):
        lines.append(f"{number} {relative}.jpg")
        _save(cub_dir / "images" / f"{relative}.jpg", _image(number), "JPEG")
        _save(segmentations / f"{relative}.png", _cub_mask()[0])
    (cub_dir / "images.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def cub_root(tmp_path) -> Path:
    """The official tarballs' layout: CUB_200_2011/ and segmentations/ side by side."""
    root = tmp_path / "cub"
    _write_cub(root / "CUB_200_2011", root / "segmentations")
    (root / "train_val_test_split.txt").write_text("1 0\n2 2\n3 1\n4 2\n")
    return root


def test_cub_test_split_in_images_txt_order(cub_root):
    reader = open_dataset("cub", cub_root)
    assert isinstance(reader, CubReader)
    samples = reader.samples()
    assert [s.id for s in samples] == ["001.Albatross/Albatross_0002_2", "002.Wren/Wren_0004_4"]
    assert samples[1].image_path == cub_root / "CUB_200_2011" / "images" / "002.Wren" / "Wren_0004_4.jpg"
    assert samples[1].mask_path == cub_root / "segmentations" / "002.Wren" / "Wren_0004_4.png"
    assert reader.split_source == str(cub_root / "train_val_test_split.txt")


def test_cub_soft_masks_threshold_at_half(cub_root):
    reader = open_dataset("cub", cub_root)
    image, mask = reader.load(reader.samples()[0])
    assert image.shape == (H, W, 3)
    np.testing.assert_array_equal(mask, _cub_mask()[1])


def test_cub_rgb_mask_is_converted_to_grey(cub_root):
    reader = open_dataset("cub", cub_root)
    sample = reader.samples()[0]
    soft, expected = _cub_mask()
    _save(sample.mask_path, np.repeat(soft[..., None], 3, axis=2))
    np.testing.assert_array_equal(reader.load(sample)[1], expected)


def test_cub_root_can_be_the_cub_folder_with_segmentations_inside(tmp_path):
    cub_dir = tmp_path / "CUB_200_2011"
    _write_cub(cub_dir, cub_dir / "segmentations")
    (cub_dir / "train_val_test_split.txt").write_text("1 2\n2 0\n3 2\n4 0\n")
    samples = open_dataset("cub", cub_dir).samples()
    assert [s.id for s in samples] == ["001.Albatross/Albatross_0001_1", "002.Wren/Wren_0003_3"]
    assert samples[0].mask_path.parent.parent == cub_dir / "segmentations"


def test_cub_uses_shipped_split_when_root_has_none(cub_root):
    (cub_root / "train_val_test_split.txt").unlink()
    reader = open_dataset("cub", cub_root)
    assert reader.split_source.endswith("cub_train_val_test_split.txt")
    # The shipped split names the real dataset's 1,000 test ids, which this tiny copy lacks.
    with pytest.raises(DatasetError, match=r"1000 test image id\(s\) not in .*images.txt"):
        reader.samples()


def test_cub_wrong_layout_names_missing_piece(cub_root, tmp_path):
    with pytest.raises(DatasetError, match="not a CUB-200-2011 layout: missing images.txt"):
        open_dataset("cub", tmp_path / "cub" / "segmentations")
    (cub_root / "segmentations").rename(cub_root / "masks")
    with pytest.raises(DatasetError, match="missing segmentations/"):
        open_dataset("cub", cub_root)


def test_cub_malformed_images_txt_names_the_line(cub_root):
    (cub_root / "CUB_200_2011" / "images.txt").write_text("1 001.Albatross/Albatross_0001_1.jpg\nbroken\n")
    with pytest.raises(DatasetError, match=r"images.txt:2: expected 'image_id value'"):
        open_dataset("cub", cub_root).samples()


# ----------------------------------------------------------------------------- ISIC-2016

@pytest.fixture
def isic_root(tmp_path) -> Path:
    root = tmp_path / "isic"
    for number in (9, 3, 5):
        _save(root / "ISBI2016_ISIC_Part1_Test_Data" / f"ISIC_{number:07d}.jpg", _image(number), "JPEG")
        _save(root / "ISBI2016_ISIC_Part1_Test_GroundTruth" / f"ISIC_{number:07d}_Segmentation.png",
              _half_mask().astype(np.uint8) * 255)
    return root


def test_isic_sorted_by_id_with_binary_masks(isic_root):
    reader = open_dataset("isic", isic_root)
    assert isinstance(reader, IsicReader)
    samples = reader.samples()
    assert [s.id for s in samples] == ["ISIC_0000003", "ISIC_0000005", "ISIC_0000009"]
    assert samples[0].mask_path.name == "ISIC_0000003_Segmentation.png"
    image, mask = reader.load(samples[0])
    np.testing.assert_array_equal(mask, _half_mask())


def test_isic_missing_ground_truth(isic_root):
    (isic_root / "ISBI2016_ISIC_Part1_Test_GroundTruth" / "ISIC_0000005_Segmentation.png").unlink()
    with pytest.raises(DatasetError, match="ISIC_0000005_Segmentation.png"):
        open_dataset("isic", isic_root).samples()
    import shutil

    shutil.rmtree(isic_root / "ISBI2016_ISIC_Part1_Test_GroundTruth")
    with pytest.raises(DatasetError, match=r"not an ISIC-2016 part 1 test layout: missing ISBI2016_ISIC_Part1_Test_GroundTruth/ \("):
        open_dataset("isic", isic_root)


# ----------------------------------------------------------------------------- folder:PATH

@pytest.fixture
def folder_root(tmp_path) -> Path:
    root = tmp_path / "mine"
    for stem, suffix, format in (("b", ".png", "PNG"), ("a", ".jpeg", "JPEG"), ("c", ".bmp", "BMP")):
        _save(root / "images" / f"{stem}{suffix}", _image(ord(stem)), format)
        _save(root / "masks" / f"{stem}.png", _half_mask().astype(np.uint8) * 255)
    return root


def test_folder_pairs_sorted_by_stem(folder_root):
    reader = open_dataset(f"folder:{folder_root}")
    assert isinstance(reader, FolderReader) and reader.name == folder_root.name  # named by its folder
    samples = reader.samples()
    assert [s.id for s in samples] == ["a", "b", "c"]
    image, mask = reader.load(samples[1])
    np.testing.assert_array_equal(image, _image(ord("b")))   # PNG: lossless
    np.testing.assert_array_equal(mask, _half_mask())


def test_folder_images_without_masks_are_listed(folder_root):
    for stem in ("d", "e", "f", "g"):
        _save(folder_root / "images" / f"{stem}.jpg", _image(1), "JPEG")
    with pytest.raises(DatasetError, match=r"4 image\(s\) without a mask in masks/: d, e, f and 1 more"):
        open_dataset(f"folder:{folder_root}").samples()


def test_folder_layout_and_spec_errors(folder_root):
    import shutil

    shutil.rmtree(folder_root / "masks")
    with pytest.raises(DatasetError, match=r"missing masks/ \(expected images/, masks/\)"):
        open_dataset(f"folder:{folder_root}")
    from segtool.data.readers import DatasetSpecError

    with pytest.raises(DatasetSpecError, match="needs a path"):
        open_dataset("folder:")


def test_exif_orientation_is_applied(folder_root):
    # Stored 40 wide x 30 high with "rotate 90" in EXIF: viewers (and the mask) see 30 x 40.
    exif = Image.Exif()
    exif[0x0112] = 6
    path = folder_root / "images" / "a.jpeg"
    Image.fromarray(_image(1)).save(path, "JPEG", exif=exif.tobytes())
    _save(folder_root / "masks" / "a.png", _half_mask(W, H).astype(np.uint8) * 255)
    reader = open_dataset(f"folder:{folder_root}")
    image, mask = reader.load(reader.samples()[0])
    assert image.shape == (W, H, 3) and mask.shape == (W, H)


def test_size_mismatch_names_the_sample(folder_root):
    _save(folder_root / "masks" / "c.png", np.zeros((H + 1, W), dtype=np.uint8))
    reader = open_dataset(f"folder:{folder_root}")
    with pytest.raises(DatasetError, match="mine sample c: image is 40x30 but its mask is 40x31"):
        reader.load(reader.samples()[2])


def test_unreadable_image_is_a_dataset_error(folder_root):
    (folder_root / "images" / "b.png").write_bytes(b"not an image")
    reader = open_dataset(f"folder:{folder_root}")
    with pytest.raises(DatasetError, match="b.png: cannot read image"):
        reader.load(reader.samples()[1])


def test_open_dataset_needs_data_root_and_a_known_name(tmp_path):
    from segtool.data.readers import DatasetSpecError

    with pytest.raises(DatasetSpecError, match="no data root given and no copy in .*flowers102; it is the Flowers-102 files"):
        open_dataset("flowers")
    with pytest.raises(DatasetSpecError, match="unknown dataset 'voc'"):
        open_dataset("voc", tmp_path)
    with pytest.raises(DatasetError, match="not a directory"):
        open_dataset("isic", tmp_path / "nowhere")


# ----------------------------------------------------------------------------- iem_crop

def test_iem_crop_landscape_and_portrait_sizes():
    image, mask = _image(0), _half_mask()
    out_image, out_mask = iem_crop(image, mask)
    assert out_image.shape == (128, 128, 3) and out_image.dtype == np.uint8
    assert out_mask.shape == (128, 128) and out_mask.dtype == bool
    tall_image, tall_mask = iem_crop(_image(0, 50, 20), _half_mask(50, 20), size=16)
    assert tall_image.shape == (16, 16, 3) and tall_mask.shape == (16, 16)


def test_iem_crop_centre_crops_after_short_side_resize():
    # 4 x 8 at size 4: no resize, the centre crop keeps columns 2..5.
    mask = np.zeros((4, 8), dtype=bool)
    mask[:, :3] = True
    image = np.repeat(np.arange(8, dtype=np.uint8)[None, :, None] * 10, 4, axis=0).repeat(3, axis=2)
    out_image, out_mask = iem_crop(image, mask, size=4)
    np.testing.assert_array_equal(out_mask, np.tile([True, False, False, False], (4, 1)))
    np.testing.assert_array_equal(out_image[0, :, 0], [20, 30, 40, 50])


def test_iem_crop_nearest_keeps_values_and_masks_stay_binary():
    rng = np.random.default_rng(1)
    image = (rng.integers(0, 2, (H, W, 3)) * 200).astype(np.uint8)
    mask = rng.integers(0, 2, (H, W)).astype(bool)
    nearest, nearest_mask = iem_crop(image, mask, size=64, image_resize="nearest")
    assert set(np.unique(nearest)) <= {0, 200}
    assert nearest_mask.dtype == bool and 0 < nearest_mask.mean() < 1
    bilinear, bilinear_mask = iem_crop(image, mask, size=64)
    assert len(np.unique(bilinear)) > 2          # blends between the two levels
    np.testing.assert_array_equal(bilinear_mask, nearest_mask)   # the mask never depends on image_resize


def test_iem_crop_rejects_bad_input():
    with pytest.raises(ValueError, match="image_resize"):
        iem_crop(_image(0), _half_mask(), image_resize="bicubic")
    with pytest.raises(ValueError, match="does not match"):
        iem_crop(_image(0), _half_mask(H, W + 1))
