"""Readers of the segmentation benchmarks: the TEST split of each, in a fixed order.

Every reader checks its layout when it is opened, so a wrong `--data-root` fails at once
with one line naming what is missing, not after minutes of evaluation. `load` returns the
image and its ground truth at the original size; the evaluation crop lives in `protocol`.

    reader = open_dataset("flowers", data_root="/data/flowers102")
    for sample in reader.samples():
        image, mask = reader.load(sample)   # uint8 HxWx3, bool HxW
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from segtool.errors import InputError, UsageError
from segtool.io.images import IMAGE_SUFFIXES
from segtool.locations import default_dataset_root

DATASET_NAMES = ("flowers", "cub", "isic", "folder:PATH")
# Each benchmark's manifest name (`segtool data list`), accepted wherever its short name is: results
# always carry the short name, so `cub` and `cub200` runs compare.
MANIFEST_NAMES = {"flowers": "flowers102", "cub": "cub200", "isic": "isic2016"}

FLOWERS_SHIPPED_IDS = "flowers102_iem_test_ids.txt"
CUB_SHIPPED_SPLIT = "cub_train_val_test_split.txt"
CUB_TEST_LABEL = 2
ISIC_IMAGES_DIR = "ISBI2016_ISIC_Part1_Test_Data"
ISIC_MASKS_DIR = "ISBI2016_ISIC_Part1_Test_GroundTruth"


class DatasetError(InputError):
    """A dataset folder, split file or sample that cannot be used as it is."""


@dataclass(frozen=True)
class Sample:
    id: str
    image_path: Path
    mask_path: Path


def _examples(items: list[str], limit: int = 3) -> str:
    """'a, b, c' or 'a, b, c and 4 more': enough to find the problem, short enough for one line."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def shipped_file(name: str) -> Path:
    """A split list shipped inside the package (`data_manifests/` in the repo)."""
    from segtool.resources import shipped_path

    path = shipped_path("manifest", name)
    if path is None:
        raise DatasetError(f"{name}: shipped split list is missing from the installed package (reinstall segtool)")
    return path


def _open_image(path: Path):
    """A fully decoded PIL image, EXIF-rotated so that pixels match how viewers show the file."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rotated = ImageOps.exif_transpose(image)
            rotated.load()
            return rotated
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DatasetError(f"{path}: cannot read image ({exc})") from None


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(_open_image(path).convert("RGB"), dtype=np.uint8)


def read_grey_mask(path: Path) -> np.ndarray:
    """Foreground = brighter than half the range: 0/255 masks and soft (CUB) masks alike; a mask
    whose values are only 0 and 1 (a label map saved as is) is foreground where 1."""
    image = _open_image(path)
    if image.mode in ("L", "P") or image.mode.startswith("I"):
        raw = np.asarray(image)
        if raw.size and raw.max() == 1:  # values 0 and 1 only: a label map, not a grey level
            return raw == 1
    if image.mode.startswith("I"):
        # 16-bit PNGs: converting to L would clip, so threshold at half the 16-bit range.
        return np.asarray(image) > 32767
    return np.asarray(image.convert("L")) > 127


class DatasetReader:
    """The test split of one dataset. Subclasses check the layout in `_check_layout`."""

    name: str = ""
    title: str = ""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: {self.title or self.name} root is not a directory")
        self._samples: list[Sample] | None = None
        self._check_layout()

    def _check_layout(self) -> None:
        raise NotImplementedError

    def _require_folders(self, folders: list[str]) -> None:
        missing = [entry for entry in folders if not (self.root / entry).is_dir()]
        if missing:
            raise self._missing_layout(self.expected, missing)

    def _list_samples(self) -> list[Sample]:
        raise NotImplementedError

    def _read_mask(self, path: Path) -> np.ndarray:
        return read_grey_mask(path)

    def samples(self) -> list[Sample]:
        if self._samples is None:
            samples = self._list_samples()
            self._require_files(samples)
            self._samples = samples
        return list(self._samples)

    def __len__(self) -> int:
        return len(self.samples())

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        image = read_rgb(sample.image_path)
        mask = self._read_mask(sample.mask_path)
        if image.shape[:2] != mask.shape:
            (h, w), (mh, mw) = image.shape[:2], mask.shape
            raise DatasetError(f"{self.name} sample {sample.id}: image is {w}x{h} but its mask is {mw}x{mh}")
        return image, mask

    def _require_files(self, samples: list[Sample]) -> None:
        """Checking existence up front is cheap and turns a late crash into a clear message."""
        missing = [str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)
                   for sample in samples for path in (sample.image_path, sample.mask_path) if not path.is_file()]
        if missing:
            raise DatasetError(f"{self.root}: {len(missing)} {self.title} test file(s) missing: {_examples(missing)}")

    def _missing_layout(self, expected: list[str], missing: list[str]) -> DatasetError:
        article = "an" if self.title[:1].lower() in "aeiou" else "a"
        return DatasetError(f"{self.root}: not {article} {self.title} layout: missing {', '.join(missing)} "
                            f"(expected {', '.join(expected)})")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r})"


class FlowersReader(DatasetReader):
    """Oxford Flowers-102 as downloaded: `jpg/`, `segmim/`, `setid.mat` in one folder.

    The segmentation protocol (ReDO, IEM) evaluates on the 1,020 ids of `trnid`, in the
    file's order. Without setid.mat the same ids come from the list shipped with segtool;
    `split_source` says which was used.
    """

    name = "flowers"
    title = "Flowers-102"
    expected = ["jpg/", "segmim/", "setid.mat"]

    def _check_layout(self) -> None:
        self._require_folders(["jpg/", "segmim/"])
        self.test_ids, self.split_source = self._read_test_ids()

    def _read_test_ids(self) -> tuple[list[int], str]:
        setid = self.root / "setid.mat"
        if setid.is_file():
            import scipy.io

            try:
                trnid = scipy.io.loadmat(str(setid))["trnid"]
            except KeyError:
                raise DatasetError(f"{setid}: no 'trnid' array (is this Flowers-102's setid.mat?)") from None
            except Exception as exc:  # scipy raises several unrelated types for a damaged file
                raise DatasetError(f"{setid}: cannot read ({exc})") from None
            return [int(i) for i in np.asarray(trnid).ravel()], str(setid)
        shipped = shipped_file(FLOWERS_SHIPPED_IDS)
        ids = [int(line) for line in shipped.read_text().split()]
        return ids, f"shipped {FLOWERS_SHIPPED_IDS} (no setid.mat in {self.root})"

    def _list_samples(self) -> list[Sample]:
        return [Sample(f"image_{i:05d}", self.root / "jpg" / f"image_{i:05d}.jpg",
                       self.root / "segmim" / f"segmim_{i:05d}.jpg") for i in self.test_ids]

    def _read_mask(self, path: Path) -> np.ndarray:
        # segmim paints the background pure blue; JPEG noise smears it, and these three tests
        # are the rule of the reference evaluation code.
        rgb = np.asarray(_open_image(path).convert("RGB"))
        red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        return ~((red == 0) | (green == 0) | (blue == 254))


class CubReader(DatasetReader):
    """CUB-200-2011 with its segmentations.

    Accepted roots: the folder that holds `CUB_200_2011/` and `segmentations/` side by side
    (what the two official tarballs extract to), or `CUB_200_2011/` itself with
    `segmentations/` moved inside it. The test split is ReDO's: the 1,000 images labelled 2
    in `train_val_test_split.txt` (taken from the root if present, else the shipped copy),
    in `images.txt` order.
    """

    name = "cub"
    title = "CUB-200-2011"
    expected = ["images.txt", "images/", "segmentations/ (in ROOT or ROOT/CUB_200_2011)"]

    def _check_layout(self) -> None:
        candidates = [self.root, self.root / "CUB_200_2011"]
        cub_dir = next((d for d in candidates if (d / "images.txt").is_file()), None)
        if cub_dir is None:
            raise self._missing_layout(self.expected, ["images.txt"])
        self.cub_dir = cub_dir
        segmentations = next((d / "segmentations" for d in (cub_dir, self.root) if (d / "segmentations").is_dir()), None)
        missing = [] if (cub_dir / "images").is_dir() else ["images/"]
        if segmentations is None:
            missing.append("segmentations/")
        if missing:
            raise self._missing_layout(self.expected, missing)
        self.segmentations_dir = segmentations
        local = [d / "train_val_test_split.txt" for d in (cub_dir, self.root)]
        self.split_file = next((p for p in local if p.is_file()), None) or shipped_file(CUB_SHIPPED_SPLIT)
        self.split_source = str(self.split_file)

    @staticmethod
    def _read_pairs(path: Path) -> list[tuple[str, str]]:
        pairs = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2:
                raise DatasetError(f"{path}:{number}: expected 'image_id value', got {line.strip()!r}")
            pairs.append((parts[0], parts[1].strip()))
        return pairs

    def _list_samples(self) -> list[Sample]:
        images = self._read_pairs(self.cub_dir / "images.txt")
        labels = dict(self._read_pairs(self.split_file))
        test_ids = {image_id for image_id, label in labels.items() if label == str(CUB_TEST_LABEL)}
        unknown = sorted(test_ids - {image_id for image_id, _ in images}, key=lambda s: (len(s), s))
        if unknown:
            raise DatasetError(f"{self.split_file}: {len(unknown)} test image id(s) not in "
                               f"{self.cub_dir / 'images.txt'}: {_examples(unknown)}")
        if not test_ids:
            raise DatasetError(f"{self.split_file}: no image labelled {CUB_TEST_LABEL} (test)")
        samples = []
        for image_id, relative in images:
            if image_id in test_ids:
                relative_path = PurePosixPath(relative)
                samples.append(Sample(str(relative_path.with_suffix("")), self.cub_dir / "images" / relative_path,
                                      self.segmentations_dir / relative_path.with_suffix(".png")))
        return samples


class IsicReader(DatasetReader):
    """ISIC-2016 part 1 (lesion segmentation) test set: 379 dermoscopy images, sorted by id."""

    name = "isic"
    title = "ISIC-2016 part 1 test"
    expected = [f"{ISIC_IMAGES_DIR}/", f"{ISIC_MASKS_DIR}/"]

    def _check_layout(self) -> None:
        self._require_folders(self.expected)

    def _list_samples(self) -> list[Sample]:
        images = sorted(p for p in (self.root / ISIC_IMAGES_DIR).glob("ISIC_*")
                        if p.suffix.lower() in (".jpg", ".jpeg") and p.is_file())
        if not images:
            raise DatasetError(f"{self.root / ISIC_IMAGES_DIR}: no ISIC_*.jpg images")
        return [Sample(p.stem, p, self.root / ISIC_MASKS_DIR / f"{p.stem}_Segmentation.png") for p in images]


class FolderReader(DatasetReader):
    """Any set of image/mask pairs: `images/NAME.*` and `masks/NAME.*` (mask > 127 = foreground)."""

    name = "folder"
    title = "image/mask folder"
    expected = ["images/", "masks/"]

    def __init__(self, root) -> None:
        # A folder set is named by its folder, so that the sets of a suite can be told apart.
        self.name = Path(root).expanduser().absolute().name or "folder"
        super().__init__(root)

    def _check_layout(self) -> None:
        self._require_folders(self.expected)

    def _by_stem(self, folder: Path) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            if path.stem in found:
                raise DatasetError(f"{folder}: two files named {path.stem!r} ({found[path.stem].name}, {path.name}); "
                                   "keep one per name")
            found[path.stem] = path
        return found

    def _list_samples(self) -> list[Sample]:
        images = self._by_stem(self.root / "images")
        masks = self._by_stem(self.root / "masks")
        if not images:
            raise DatasetError(f"{self.root / 'images'}: no images ({', '.join(IMAGE_SUFFIXES)})")
        unmatched = sorted(stem for stem in images if stem not in masks)
        if unmatched:
            raise DatasetError(f"{self.root}: {len(unmatched)} image(s) without a mask in masks/: {_examples(unmatched)}")
        return [Sample(stem, images[stem], masks[stem]) for stem in sorted(images)]


READERS: dict[str, type[DatasetReader]] = {"flowers": FlowersReader, "cub": CubReader, "isic": IsicReader}
DATA_ROOT_HINTS = {
    "flowers": "the Flowers-102 files (jpg/, segmim/, setid.mat)",
    "cub": "the folder holding CUB_200_2011/ and segmentations/",
    "isic": f"the folder holding {ISIC_IMAGES_DIR}/ and {ISIC_MASKS_DIR}/",
}


class DatasetSpecError(UsageError):
    """A dataset name that is not known, or a benchmark named without its data root: the request
    must change (what is found on disk is a DatasetError). `dataset` is the benchmark's name."""

    def __init__(self, message: str, missing_root: bool = False, dataset: str | None = None):
        super().__init__(message)
        self.missing_root = missing_root
        self.dataset = dataset


def benchmark_name(spec: str) -> str | None:
    """The short name of a benchmark given by its short or manifest name (cub200 -> cub); None
    for anything else."""
    name = spec.strip().lower()
    by_manifest = {manifest: short for short, manifest in MANIFEST_NAMES.items()}
    name = by_manifest.get(name, name)
    return name if name in READERS else None


def data_root_of(name: str, data_root: str | os.PathLike | None) -> Path | None:
    """The given root, else the default copy (where `data fetch` puts it) when there is one."""
    if data_root is not None:
        return Path(data_root)
    default = default_dataset_root(MANIFEST_NAMES[name])
    return default if default.is_dir() else None


def check_dataset_spec(spec: str, data_root: str | os.PathLike | None = None) -> None:
    """Refuse a bad dataset name before anything is opened (a suite checks all its names first)."""
    spec = spec.strip()
    if spec.lower().startswith("folder:"):
        if not spec[len("folder:"):]:
            raise DatasetSpecError("folder: needs a path, e.g. folder:my_photos (with images/ and masks/ inside)")
        return
    name = benchmark_name(spec)
    if name is None:
        known = ", ".join(f"{short} ({manifest})" for short, manifest in MANIFEST_NAMES.items())
        raise DatasetSpecError(f"unknown dataset {spec!r}: expected one of {known}, folder:PATH")
    if data_root_of(name, data_root) is None:
        raise DatasetSpecError(f"{name}: no data root given and no copy in {default_dataset_root(MANIFEST_NAMES[name])}; "
                               f"it is {DATA_ROOT_HINTS[name]}", missing_root=True, dataset=name)


def open_dataset(spec: str, data_root: str | os.PathLike | None = None) -> DatasetReader:
    """A reader for "flowers", "cub", "isic" (or flowers102, cub200, isic2016) under `data_root`
    (default: the copy `data fetch` made), or "folder:PATH" (PATH as given)."""
    check_dataset_spec(spec, data_root)
    spec = spec.strip()
    if spec.lower().startswith("folder:"):
        return FolderReader(spec[len("folder:"):])
    name = benchmark_name(spec)
    return READERS[name](data_root_of(name, data_root))
