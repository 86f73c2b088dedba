"""Image loading that names the file it cannot read."""
import os.path as osp
from typing import Optional

from mmcv.transforms import LoadImageFromFile
from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """mmcv's :class:`LoadImageFromFile`, failing with the file's name.

    mmcv's loader stops on a zero-byte file with an OpenCV assertion
    (``!buf.empty()``) that names no file. This one takes the same arguments
    and gives the same results, and when a local file cannot be read as an
    image it raises an error that names the file and says whether it is
    empty or cannot be decoded. A missing file keeps mmcv's
    ``FileNotFoundError`` (which names it), and ``ignore_empty=True`` keeps
    mmcv's behaviour (the sample is dropped).

    Raises:
        OSError: If the file at ``results['img_path']`` is empty or cannot
            be decoded.
    """

    def transform(self, results: dict) -> Optional[dict]:
        try:
            return super().transform(results)
        except Exception as exc:
            path = results.get('img_path')
            if not isinstance(path, str) or not osp.isfile(path):
                raise
            problem = ('is empty (0 bytes)' if osp.getsize(path) == 0 else
                       'cannot be decoded as an image '
                       f'({type(exc).__name__}: {str(exc).strip()})')
            raise OSError(
                f'{type(self).__name__}: the image file {path!r} {problem}; '
                'replace it with a readable image or remove it from the '
                'dataset.') from exc


__all__ = ['CheckedLoadImageFromFile']
