"""Where the samples of a dataset come from: one interface over arrays, ``.npy`` files, torch datasets and folders.

A :class:`Source` has a length and reads samples by position: ``read(positions)`` returns the inputs
as one float tensor and the labels (an integer per sample) or None. Positions are what a store's
``index`` array records, so a sample of the store can always be found again in its source.

* :class:`ArraySource` — a numpy array or tensor in memory (with optional labels);
* :class:`NpySource` — a ``.npy`` file, read chunk by chunk from disk (memory stays bounded, no mmap);
* :class:`DatasetSource` — a map-style torch ``Dataset`` or a ``DataLoader`` over one (its workers,
  collate function and pinned memory are used; a shuffled loader is refused: its order is not stable);
* :class:`FolderSource` — a folder of images (png, jpg, bmp), sorted by path; images in class
  sub-folders (``folder/cat/1.png``) get the sub-folder's rank as their label, as torchvision's ImageFolder.

:func:`as_source` picks the right one for whatever ``explain_dataset`` is given.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import ComposerError
from ..extras import optional_import

Batch = Tuple[torch.Tensor, Optional[torch.Tensor]]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _labels(value, n: int, what: str) -> Optional[torch.Tensor]:
    """Integer class labels, one per sample, or None when ``value`` holds none."""
    if value is None:
        return None
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if t.is_floating_point() or t.dtype == torch.bool or t.is_complex() or t.dim() != 1:
        return None   # not class labels (a mask, a regression target...): the store keeps no labels
    if t.numel() != n:
        raise ComposerError(f"{what} has {t.numel()} labels for {n} samples")
    return t.long()


class Source:
    """Samples by position. Subclasses implement ``__len__``, :meth:`read` and :meth:`describe`."""

    #: what kind of source this is, as recorded in a store's provenance
    kind = "source"

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, positions: Sequence[int]) -> Batch:
        """(inputs, labels or None) of the samples at ``positions`` (ascending, contiguous in practice)."""
        raise NotImplementedError

    def describe(self) -> Dict[str, Any]:
        """What identifies the data in a store's provenance: kind, size, a sample's shape and a content hash."""
        first, _ = self.read([0])
        last, _ = self.read([len(self) - 1])
        digest = hashlib.sha256()
        for t in (first, last):
            digest.update(np.ascontiguousarray(t.detach().cpu().numpy()).tobytes())
        return {"kind": self.kind, "samples": len(self), "sample_shape": list(first.shape[1:]),
                "dtype": str(first.dtype).replace("torch.", ""), "first_last_sha256": digest.hexdigest()[:16]}

    def batches(self, chunks: Sequence[Tuple[int, Sequence[int]]], workers: int = 0) -> Iterator[Tuple[int, Batch]]:
        """``(chunk id, batch)`` for each ``(chunk id, positions)``, in order (a loader may read ahead)."""
        for chunk, positions in chunks:
            yield chunk, self.read(positions)

    def paths(self, positions: Sequence[int]) -> Optional[List[str]]:
        """The file of each sample (folders only), else None."""
        return None


class ArraySource(Source):
    """Inputs (and labels) held in memory: a numpy array or a tensor, batch axis first.

    Example
    -------
    >>> src = ArraySource(np.zeros((5, 1, 4, 4), np.float32), labels=np.arange(5))
    >>> x, y = src.read([1, 2])
    >>> tuple(x.shape), y.tolist()
    ((2, 1, 4, 4), [1, 2])
    """

    kind = "array"

    def __init__(self, inputs, labels=None):
        x = inputs if isinstance(inputs, torch.Tensor) else torch.from_numpy(np.asarray(inputs))
        if x.dim() < 2:
            raise ComposerError(f"the inputs need a batch axis first, shape (samples, ...); got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            x = x.float()
        self.x = x
        self.y = _labels(labels, x.shape[0], "labels")

    def __len__(self) -> int:
        return self.x.shape[0]

    def read(self, positions: Sequence[int]) -> Batch:
        index = _as_index(positions)
        return self.x[index], None if self.y is None else self.y[index]


def _as_index(positions: Sequence[int]):
    """A slice when the positions are contiguous (a view, no copy), else a tensor of them."""
    positions = list(positions)
    if positions and positions == list(range(positions[0], positions[-1] + 1)):
        return slice(positions[0], positions[-1] + 1)
    return torch.as_tensor(positions, dtype=torch.long)


class NpySource(Source):
    """A ``.npy`` file of inputs (and optionally one of labels), read from disk a chunk at a time.

    Only the samples asked for are read (with ``seek`` and ``read``, not a memory map, so the
    process's memory does not grow with the file). Integer inputs (e.g. uint8 images) become float32.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(path, np.arange(24, dtype=np.float32).reshape(6, 4))
    >>> NpySource(path).read([2, 3])[0].tolist()
    [[8.0, 9.0, 10.0, 11.0], [12.0, 13.0, 14.0, 15.0]]
    """

    kind = "npy"

    def __init__(self, path, labels=None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ComposerError("no such .npy file", source=str(self.path))
        self.shape, self.dtype, self.offset = _npy_header(self.path)
        if len(self.shape) < 2:
            raise ComposerError(f"the inputs need a batch axis first, shape (samples, ...); got {self.shape}",
                                source=str(self.path))
        self.row = int(np.prod(self.shape[1:], dtype=np.int64))
        if labels is None or isinstance(labels, (str, Path)):
            y = np.load(labels, allow_pickle=False) if labels is not None else None
        else:
            y = labels
        self.y = _labels(y, self.shape[0], f"labels {labels}" if isinstance(labels, (str, Path)) else "labels")

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, positions: Sequence[int]) -> Batch:
        with open(self.path, "rb") as f:
            return self._read(f, positions)

    def batches(self, chunks, workers: int = 0):
        with open(self.path, "rb") as f:   # one open file for the whole job
            for chunk, positions in chunks:
                yield chunk, self._read(f, positions)

    def _read(self, f, positions: Sequence[int]) -> Batch:
        positions, parts = list(positions), []
        for start, stop in _runs(positions):
            f.seek(self.offset + start * self.row * self.dtype.itemsize)
            count = (stop - start) * self.row
            part = np.fromfile(f, dtype=self.dtype, count=count)
            if part.size != count:
                raise ComposerError(f"the file ends before sample {stop - 1}", source=str(self.path))
            parts.append(part.reshape(stop - start, *self.shape[1:]))
        x = torch.from_numpy(parts[0] if len(parts) == 1 else np.concatenate(parts))
        if not x.is_floating_point():
            x = x.float()
        return x, None if self.y is None else self.y[torch.as_tensor(positions, dtype=torch.long)]


def _runs(positions: List[int]) -> Iterator[Tuple[int, int]]:
    """Contiguous runs ``[start, stop)`` of ascending positions."""
    start = prev = positions[0]
    for p in positions[1:]:
        if p != prev + 1:
            yield start, prev + 1
            start = p
        prev = p
    yield start, prev + 1


def _npy_header(path: Path) -> Tuple[Tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) of a C-ordered ``.npy`` file without object dtype."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        try:
            version = fmt.read_magic(f)
            shape, fortran, dtype = (fmt.read_array_header_1_0(f) if version == (1, 0)
                                     else fmt.read_array_header_2_0(f))
        except ValueError as err:
            raise ComposerError(f"not a .npy file: {err}", source=str(path)) from None
        offset = f.tell()
    if fortran and len(shape) > 1:
        raise ComposerError("the array is stored in Fortran order; save it C-ordered (np.ascontiguousarray)",
                            source=str(path))
    if dtype.hasobject:
        raise ComposerError("the array holds Python objects; save numbers", source=str(path))
    return tuple(shape), dtype, offset


class DatasetSource(Source):
    """A map-style torch ``Dataset`` (``len`` and ``[i]``), or a ``DataLoader`` over one.

    An item is an input tensor or a tuple ``(input, label, ...)``; labels that are one integer per
    sample are kept. A ``DataLoader`` lends its workers, collate function and ``pin_memory``; it must
    read in order (``shuffle=False``, no sampler of its own), so that a store can be resumed.

    Example
    -------
    >>> data = torch.utils.data.TensorDataset(torch.zeros(5, 3), torch.arange(5))
    >>> x, y = DatasetSource(data).read([3, 4])
    >>> tuple(x.shape), y.tolist()
    ((2, 3), [3, 4])
    """

    kind = "dataset"

    def __init__(self, data, workers: Optional[int] = None):
        from torch.utils.data import DataLoader, Dataset, IterableDataset, SequentialSampler, default_collate

        self.collate: Callable = default_collate
        self.workers, self.pin_memory, self.batch_size = 0, False, None
        if isinstance(data, DataLoader):
            if isinstance(data.dataset, IterableDataset):
                raise ComposerError("an IterableDataset has no positions to resume from; use a map-style Dataset "
                                    "(__len__ and __getitem__)")
            if not isinstance(data.sampler, SequentialSampler) or type(data.batch_sampler).__name__ != "BatchSampler":
                raise ComposerError("the DataLoader does not read the dataset in order (shuffle=True or a sampler of "
                                    "its own): a store must be resumable, so pass shuffle=False, or pass the Dataset")
            self.collate, self.workers, self.pin_memory = data.collate_fn, data.num_workers, data.pin_memory
            self.batch_size = data.batch_size
            data = data.dataset
        if isinstance(data, IterableDataset):
            raise ComposerError("an IterableDataset has no positions to resume from; use a map-style Dataset "
                                "(__len__ and __getitem__)")
        if not isinstance(data, Dataset) or not hasattr(data, "__len__"):
            raise ComposerError(f"{type(data).__name__} is not a map-style torch Dataset with a length")
        if workers is not None:
            self.workers = workers
        self.dataset = data
        if isinstance(data, torch.utils.data.TensorDataset):
            self.kind = "tensor_dataset"

    def __len__(self) -> int:
        return len(self.dataset)

    def _split(self, batch) -> Batch:
        if isinstance(batch, torch.Tensor):
            x, y = batch, None
        elif isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
            x, y = batch[0], (batch[1] if len(batch) > 1 and isinstance(batch[1], torch.Tensor) else None)
        else:
            raise ComposerError(f"the dataset's items must be a tensor or a tuple (input, label, ...); "
                                f"its batches are {type(batch).__name__}")
        if not x.is_floating_point():
            x = x.float()
        return x, _labels(y, x.shape[0], "the dataset") if y is not None else None

    def read(self, positions: Sequence[int]) -> Batch:
        if isinstance(self.dataset, torch.utils.data.TensorDataset):   # slices, not one item at a time
            index = _as_index(positions)
            return self._split(tuple(t[index] for t in self.dataset.tensors))
        return self._split(self.collate([self.dataset[i] for i in positions]))

    def batches(self, chunks, workers: int = 0):
        workers = max(self.workers, workers)
        if workers == 0 or isinstance(self.dataset, torch.utils.data.TensorDataset):
            yield from super().batches(chunks)
            return
        from torch.utils.data import DataLoader

        chunks = list(chunks)
        loader = DataLoader(self.dataset, batch_sampler=[list(p) for _, p in chunks], num_workers=workers,
                            collate_fn=self.collate, pin_memory=self.pin_memory)
        for (chunk, _), batch in zip(chunks, loader):
            yield chunk, self._split(batch)


class FolderSource(Source):
    """The images of a folder (png, jpg, jpeg, bmp; sub-folders included), sorted by path.

    Each image becomes a float tensor ``(C, H, W)`` in [0, 1] (``mode`` "RGB" or "L" for one channel),
    or whatever ``transform`` (a PIL image -> tensor) makes of it; all must have one shape. When every
    image lies in a sub-folder of ``folder``, the sub-folders are classes: the label is the rank of
    the sub-folder's name (torchvision's ImageFolder convention).

    Example
    -------
    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("a/1.png", "b/2.png"):
    ...     (root / name).parent.mkdir(exist_ok=True)
    ...     Image.new("L", (4, 3)).save(root / name)
    >>> src = FolderSource(root, mode="L")
    >>> x, y = src.read([0, 1])
    >>> tuple(x.shape), y.tolist(), src.paths([1])
    ((2, 1, 3, 4), [0, 1], ['b/2.png'])
    """

    kind = "folder"

    def __init__(self, folder, mode: str = "RGB", transform: Optional[Callable] = None):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ComposerError("no such folder", source=str(self.folder))
        self.files = sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*")
                            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise ComposerError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the folder", source=str(self.folder))
        if mode not in ("RGB", "L"):
            raise ComposerError(f"mode is 'RGB' or 'L', got {mode!r}")
        self.mode, self.transform = mode, transform
        tops = [f.split("/")[0] if "/" in f else None for f in self.files]
        self.classes = sorted(set(tops)) if None not in tops else []
        rank = {c: i for i, c in enumerate(self.classes)}
        self.y = torch.tensor([rank[t] for t in tops], dtype=torch.long) if self.classes else None

    def __len__(self) -> int:
        return len(self.files)

    def _image(self, name: str) -> torch.Tensor:
        image = optional_import("PIL.Image", "reading a folder of images")
        with image.open(self.folder / name) as img:
            img = img.convert(self.mode)
            if self.transform is not None:
                return self.transform(img)
            array = np.asarray(img, dtype=np.float32) / 255.0
        return torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy())

    def read(self, positions: Sequence[int]) -> Batch:
        images = [self._image(self.files[i]) for i in positions]
        shapes = {tuple(t.shape) for t in images}
        if len(shapes) > 1:
            first = tuple(images[0].shape)
            odd = next(self.files[i] for i, t in zip(positions, images) if tuple(t.shape) != first)
            raise ComposerError(f"images of different sizes ({first} and others): pass a transform that resizes them",
                                source=str(self.folder / odd))
        x = torch.stack(images)
        return x, None if self.y is None else self.y[torch.as_tensor(list(positions), dtype=torch.long)]

    def paths(self, positions: Sequence[int]) -> List[str]:
        return [self.files[i] for i in positions]


def as_source(data, labels=None, *, image_mode: str = "RGB", transform: Optional[Callable] = None) -> Source:
    """The :class:`Source` for ``data``: a Source, torch Dataset or DataLoader, an array or tensor, a
    ``.npy`` file, a folder of images, or a pair ``(inputs, labels)`` of arrays or ``.npy`` files.

    Example
    -------
    >>> type(as_source(np.zeros((3, 2)))).__name__, type(as_source((np.zeros((3, 2)), [0, 1, 2]))).__name__
    ('ArraySource', 'ArraySource')
    """
    if isinstance(data, Source):
        return data
    if isinstance(data, tuple) and len(data) == 2 and labels is None:
        data, labels = data
    if isinstance(data, (torch.utils.data.Dataset, torch.utils.data.DataLoader)):
        if labels is not None:
            raise ComposerError("a Dataset brings its own labels: its items are (input, label)")
        return DatasetSource(data)
    if isinstance(data, (str, Path)):
        path = Path(data)
        if path.is_dir():
            if labels is not None:
                raise ComposerError("a folder's labels are its class sub-folders; labels= is for arrays")
            return FolderSource(path, mode=image_mode, transform=transform)
        if path.suffix.lower() == ".npy":
            return NpySource(path, labels)
        raise ComposerError("data must be a folder of images or a .npy file" if path.exists()
                            else "no such file or folder", source=str(path))
    if isinstance(data, (np.ndarray, torch.Tensor)):
        return ArraySource(data, labels)
    raise ComposerError(f"cannot read samples from {type(data).__name__}: pass a torch Dataset or DataLoader, "
                        "an array or tensor, a .npy file or a folder of images")
