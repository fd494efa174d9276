#!/usr/bin/env python3
"""Writes tests/fixtures/upstream/hf-image.json: InternVL's pixel_values from HF transformers' own CLIPImageProcessor.

The oracle for the C# `internvl-vision` profile, independent of preprocess_image_text.py (whose internvl_vision is a
twin written from the same reading as the C#). FreeBind pins transformers 4.30.2, which cannot be installed here (no
PyPI) and whose repository is too large to fetch. So these upstream files, each as the code search's read_file served
it (every file comes at its own commit, the only one stored), are written verbatim under a folder OUTSIDE this
repository and given with --transformers (never committed; their SHA-256 is checked before anything runs):

  src/transformers/models/clip/image_processing_clip.py  8f3e5eb (CLIPImageProcessor: __init__, resize, preprocess)
  src/transformers/image_transforms.py                   10fe773 (resize through PIL, center_crop, rescale, normalize,
                                                                  to_pil_image, to_channel_dimension_format,
                                                                  get_resize_output_image_size, convert_to_rgb)
  src/transformers/image_processing_utils.py             d05a921 (BaseImageProcessor.rescale/normalize/center_crop,
                                                                  get_size_dict)

What makes them run as 4.30.2 did, and what is not upstream:
  * image_processing_clip.py 8f3e5eb is 4.31/4.32's form: 4.30.2's preprocess plus the `input_data_format` argument
    (None here: inferred, channels last) and no `validate_kwargs` or `fetch_images` (later versions). The order of the
    steps (convert_to_rgb, to_numpy_array, resize, center_crop, rescale, normalize, to channels first) is 4.30.2's.
  * image_transforms.py 10fe773 is newer than 4.30.2 (2025). The code this path runs is the same arithmetic as
    4.30.2's: `resize` hands the uint8 HWC array to PIL (`to_pil_image`, no rescale for uint8) and calls
    `Image.resize((w, h), resample, reducing_gap=None)`; `get_resize_output_image_size` keeps the short side at 224
    and the long side at int(224 · long / short); `center_crop` offsets are (n − 224) // 2 (its padding branch, which
    differs from 4.30.2 by a ceil, is never reached: the resized short side is 224); `rescale` multiplies in float64
    and casts to float32 (4.30.2 multiplied uint8 by a Python float, which NumPy also computes in float64);
    `normalize` subtracts and divides in float32 with mean and std cast to float32.
  * image_processing_utils.py d05a921 (2024) imports BatchFeature and ImageProcessingMixin from image_processing_base
    (split out of it in 4.41); its rescale/normalize/center_crop/get_size_dict are 4.30.2's.
  * NOT upstream's, stand-ins below: `transformers.image_utils` (the stored version of that file is from 2021 and
    lacks ChannelDimension): ChannelDimension, PILImageResampling (= PIL.Image.Resampling, as 4.30.2 has it with
    Pillow ≥ 9.1), OPENAI_CLIP_MEAN/STD, infer_channel_dimension_format, get_channel_dimension_axis, get_image_size,
    is_scaled_image, make_list_of_images, valid_images and to_numpy_array (np.array of a PIL image), written from
    4.30.2's definitions; `transformers.image_processing_base` (BatchFeature as a dict, return_tensors='np' stacks;
    ImageProcessingMixin keeps the extra keyword arguments); `transformers.utils` (TensorType, ExplicitEnum,
    is_vision_available → True, torch/tf/jax absent, requires_backends, a logger with warning_once).
  So the geometry, resampling call, crop, rescale and normalisation are upstream's; format bookkeeping is ours.

Configuration: InternVL-14B-224px's preprocessor_config.json as docs/preprocessing.md reads it: size shortest_edge 224,
crop_size 224, do_center_crop, resample 3 (bicubic), rescale 1/255, ImageNet mean (0.485, 0.456, 0.406) and std
(0.229, 0.224, 0.225), do_convert_rgb. Images are opened as InternVL's clip_benchmark opens them,
`Image.open(path)` (its loaders then call `.convert('RGB')`, which the processor's convert_to_rgb also does). So the
EXIF-6 image is NOT rotated here (deviation 1 of docs/preprocessing.md rotates it); the fixture also holds it opened
with ImageOps.exif_transpose, which is what the C# must equal.

Inputs: the three sample JPEGs and the generated images that preprocess_image_text.py writes to
OUT/preprocess/hostile/ (each input's SHA-256 is in the fixture, so a changed generator or sample is noticed). For
each input: the [3,224,224] pixel_values' per-channel sums (float64 over the float32 values) and every STRIDE-th value
of the flattened tensor.

Usage (Debian's python with python3-numpy, python3-pil; needs PIL ≥ 9.1):
  /usr/bin/python3 tools/reference/preprocess_image_text.py --out "$FREEBIND_TESTDATA"     # writes hostile/
  /usr/bin/python3 tools/reference/upstream_hf_image.py --transformers /work/scratch/hf/src/transformers \\
      --hostile "$FREEBIND_TESTDATA/preprocess/hostile" --out tests/fixtures/upstream/hf-image.json
"""

import argparse
import os

import numpy as np
import PIL
from PIL import Image, ImageOps

import fixture_json
from hf_stand_ins import ExplicitEnum, TensorType, check_upstream_files, logger_factory, module, sha256

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("FREEBIND_SHARED") or os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared"))
MEDIA = os.path.join(SHARED, "media", "freebind-samples")

# path under --transformers → (commit the code search served it at, SHA-256 of the file written from it)
UPSTREAM_FILES = {
    "models/clip/image_processing_clip.py": ("8f3e5ebe573f12bad1e1a7fce9e6589311f041ed",
                                             "ac25f8bb36688bd4e9e38b8f81131453887adc189d13514b4226889e6823aa3b"),
    "image_transforms.py": ("10fe77342595ced2cdd2442c0a19ec2b87f669fd",
                            "05adea2df9217d301af319b8cf525a287ddb22ddf7b76da2e87e2953e3baad70"),
    "image_processing_utils.py": ("d05a9215b4f311963e465b99753ac711fb828893",
                                  "10348be0efaa581a1fcb56b9b192cdb521bd6fe3ef169b5e0263fb53dfda8b42"),
}

# InternVL-14B-224px's preprocessor_config.json (CLIPImageProcessor).
CONFIG = {
    "do_resize": True, "size": {"shortest_edge": 224}, "resample": 3, "do_center_crop": True,
    "crop_size": {"height": 224, "width": 224}, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
    "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "do_convert_rgb": True,
}
SAMPLES = ("BBQ", "toilet", "train")
HOSTILE = ("exif6.jpg", "gray.png", "gray.jpg", "alpha.png", "alpha.webp", "lossless.webp", "lossy.webp", "rgb24.bmp",
           "anim.gif", "cmyk.jpg", "progressive.jpg", "portrait.png")
STRIDE = 997  # prime, so the samples walk across channels, rows and columns (151 values per tensor)


# ----------------------------------------------------------------------------------------------------------------
# stand-ins (ours, not upstream's; those both generators use are in hf_stand_ins.py)


class ChannelDimension(ExplicitEnum):
    FIRST = "channels_first"
    LAST = "channels_last"
    NONE = "none"


def _already_rescaled(message):
    raise AssertionError("upstream warned that the image looks already rescaled: the input is not uint8")


_get_logger = logger_factory(_already_rescaled)


def _requires_backends(obj, backends):
    assert list(backends) == ["vision"], backends  # PIL is here; nothing else is asked for on this path


def infer_channel_dimension_format(image, num_channels=None):
    """4.30.2: a 2-D image has no channel axis; of 3-D, the first axis if it has 1 or 3 entries, else the last."""
    num_channels = num_channels if num_channels is not None else (1, 3)
    num_channels = (num_channels,) if isinstance(num_channels, int) else num_channels
    if image.ndim == 3:
        first_dim, last_dim = 0, 2
    elif image.ndim == 4:
        first_dim, last_dim = 1, 3
    else:
        raise ValueError(f"Unsupported number of image dimensions: {image.ndim}")
    if image.shape[first_dim] in num_channels:
        return ChannelDimension.FIRST
    if image.shape[last_dim] in num_channels:
        return ChannelDimension.LAST
    raise ValueError("Unable to infer channel dimension format")


def get_channel_dimension_axis(image, input_data_format=None):
    if input_data_format is None:
        input_data_format = infer_channel_dimension_format(image)
    if input_data_format == ChannelDimension.FIRST:
        return image.ndim - 3
    if input_data_format == ChannelDimension.LAST:
        return image.ndim - 1
    raise ValueError(f"Unsupported data format: {input_data_format}")


def get_image_size(image, channel_dim=None):
    """(height, width)"""
    if channel_dim is None:
        channel_dim = infer_channel_dimension_format(image)
    if channel_dim == ChannelDimension.FIRST:
        return image.shape[-2], image.shape[-1]
    if channel_dim == ChannelDimension.LAST:
        return image.shape[-3], image.shape[-2]
    raise ValueError(f"Unsupported data format: {channel_dim}")


def is_scaled_image(image):
    if image.dtype == np.uint8:
        return False
    return np.min(image) >= 0 and np.max(image) <= 1


def _is_valid_image(img):
    return isinstance(img, (PIL.Image.Image, np.ndarray))


def valid_images(imgs):
    return all(_is_valid_image(img) for img in (imgs if isinstance(imgs, (list, tuple)) else [imgs]))


def make_list_of_images(images, expected_ndims=3):
    if isinstance(images, (list, tuple)) and len(images) > 0 and _is_valid_image(images[0]):
        return list(images)
    if isinstance(images, PIL.Image.Image):
        return [images]
    if isinstance(images, np.ndarray) and images.ndim == expected_ndims:
        return [images]
    raise ValueError(f"Invalid image shape or type: {type(images)}")


def to_numpy_array(img):
    if isinstance(img, PIL.Image.Image):
        return np.array(img)
    return np.asarray(img)


class BatchFeature(dict):
    def __init__(self, data=None, tensor_type=None):
        data = dict(data or {})
        if tensor_type is not None:
            assert TensorType(tensor_type) == TensorType.NUMPY, tensor_type
            data = {k: np.array(v) for k, v in data.items()}
        super().__init__(data)


class ImageProcessingMixin:
    def __init__(self, **kwargs):
        for key, value in kwargs.items():
            setattr(self, key, value)


def install_stand_ins(transformers_dir):
    package = module("transformers", __version__="4.30.2 (stand-in package: see upstream_hf_image.py)")
    package.__path__ = [transformers_dir]
    models = module("transformers.models")
    models.__path__ = [os.path.join(transformers_dir, "models")]
    clip = module("transformers.models.clip")
    clip.__path__ = [os.path.join(transformers_dir, "models", "clip")]
    logging_module = module("transformers.utils.logging", get_logger=_get_logger)
    absent = lambda *_: False  # noqa: E731  (torch, tensorflow and jax are not part of this path)
    module("transformers.utils.import_utils", is_flax_available=absent, is_tf_available=absent,
            is_torch_available=absent, is_vision_available=lambda: True, requires_backends=_requires_backends)
    module("transformers.utils", TensorType=TensorType, ExplicitEnum=ExplicitEnum, logging=logging_module,
            is_vision_available=lambda: True, is_jax_tensor=absent, is_tf_tensor=absent,
            is_torch_tensor=absent).__path__ = []
    module("transformers.image_utils", ChannelDimension=ChannelDimension, PILImageResampling=PIL.Image.Resampling,
            ImageInput=object, OPENAI_CLIP_MEAN=[0.48145466, 0.4578275, 0.40821073],
            OPENAI_CLIP_STD=[0.26862954, 0.26130258, 0.27577711],
            infer_channel_dimension_format=infer_channel_dimension_format,
            get_channel_dimension_axis=get_channel_dimension_axis, get_image_size=get_image_size,
            is_scaled_image=is_scaled_image, make_list_of_images=make_list_of_images, valid_images=valid_images,
            to_numpy_array=to_numpy_array)
    module("transformers.image_processing_base", BatchFeature=BatchFeature, ImageProcessingMixin=ImageProcessingMixin)


def load_upstream(transformers_dir):
    check_upstream_files(transformers_dir, UPSTREAM_FILES)
    install_stand_ins(transformers_dir)
    from transformers.models.clip.image_processing_clip import CLIPImageProcessor
    return CLIPImageProcessor


# ----------------------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transformers", required=True, help="folder holding the upstream files listed in the docstring (src/transformers)")
    ap.add_argument("--hostile", required=True, help="preprocess_image_text.py's OUT/preprocess/hostile folder")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    CLIPImageProcessor = load_upstream(os.path.abspath(args.transformers))
    processor = CLIPImageProcessor(**CONFIG)

    inputs = [("sample", name + ".jpeg", os.path.join(MEDIA, name + ".jpeg")) for name in SAMPLES]
    inputs += [("hostile", name, os.path.join(args.hostile, name)) for name in HOSTILE]
    cases = []
    for kind, name, path in inputs:
        opened = [("Image.open", Image.open(path))]
        if name == "exif6.jpg":  # deviation 1: the product applies the EXIF orientation, upstream does not
            opened.append(("ImageOps.exif_transpose(Image.open)", ImageOps.exif_transpose(Image.open(path))))
        for how, img in opened:
            size = img.size
            pixel_values = processor(img, return_tensors="np")["pixel_values"]
            assert pixel_values.shape == (1, 3, 224, 224) and pixel_values.dtype == np.float32, (name, pixel_values.shape)
            values = pixel_values[0]
            cases.append({
                "kind": kind,
                "file": name,
                "sha256": sha256(path),
                "opened_with": how,
                "decoded_size": list(size),
                "mode": img.mode,
                "channel_sums": [float(values[c].astype(np.float64).sum()) for c in range(3)],
                "strided": [float(v) for v in values.reshape(-1)[::STRIDE]],
            })

    fixture = {
        "what": "InternVL-14B-224px pixel_values [3,224,224] computed by HF transformers' own CLIPImageProcessor",
        "upstream": {f"src/transformers/{p}": {"commit": c, "sha256": d} for p, (c, d) in UPSTREAM_FILES.items()},
        "generator": "tools/reference/upstream_hf_image.py",
        "not_upstream": "transformers.image_utils (ChannelDimension, format inference, to_numpy_array), image_processing_base "
                        "(BatchFeature) and utils are stand-ins in the generator; geometry, PIL resize call, crop, rescale "
                        "and normalize are upstream's",
        "config": CONFIG,
        "pillow": PIL.__version__,
        "stride": STRIDE,
        "cases": cases,
    }
    text = fixture_json.write(fixture, args.out)
    print(f"{len(cases)} tensors from {len(inputs)} inputs; wrote {args.out} ({len(text) // 1024} KiB)")


if __name__ == "__main__":
    main()
