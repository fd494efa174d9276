"""Writes the ONNX files of two export pitfalls (issue 10) from the stand-in encoders, with onnx itself.

    make_edge_models.py --models DIR --out DIR

DIR/external/vision.onnx + vision.onnx.data
    the stand-in ImageBind vision encoder saved as a model over 2 GB is: every initializer in an
    external data file beside the graph (onnx.save_model(save_as_external_data=True)).
DIR/symbolic/vision.onnx
    the same encoder with its output width left symbolic (a dim_param), as some exporters leave it.
DIR/symbolic/narrow.onnx
    the stand-in InternVL-C vision encoder (768-d, same input as ImageBind vision), width symbolic:
    declared as a 1024-d expert, only running it can tell.

Deterministic: the files depend only on the stand-in models they are made from.
"""

from __future__ import annotations

import argparse
import os

import onnx


def symbolic_width(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    last = copy.graph.output[0].type.tensor_type.shape.dim[-1]
    last.ClearField("dim_value")
    last.dim_param = "width"
    onnx.checker.check_model(copy)
    return copy


def main() -> None:
    ap = argparse.ArgumentParser(description="Write ONNX files with external data and with a symbolic output width.")
    ap.add_argument("--models", required=True, help="the stand-in models (generate_models.py --out)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    vision = onnx.load(os.path.join(args.models, "encoders", "imagebind", "vision.onnx"))
    narrow = onnx.load(os.path.join(args.models, "encoders", "internvl-c", "vision.onnx"))

    symbolic = os.path.join(args.out, "symbolic")
    os.makedirs(symbolic, exist_ok=True)
    onnx.save_model(symbolic_width(vision), os.path.join(symbolic, "vision.onnx"))
    onnx.save_model(symbolic_width(narrow), os.path.join(symbolic, "narrow.onnx"))

    # Last: saving with external data moves the weights out of the in-memory model too.
    external = os.path.join(args.out, "external")
    os.makedirs(external, exist_ok=True)
    for name in ("vision.onnx", "vision.onnx.data"):
        if os.path.exists(os.path.join(external, name)):
            os.remove(os.path.join(external, name))  # save_model appends to an existing data file
    onnx.save_model(vision, os.path.join(external, "vision.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="vision.onnx.data", size_threshold=0)
    onnx.checker.check_model(os.path.join(external, "vision.onnx"))

    data = os.path.getsize(os.path.join(external, "vision.onnx.data"))
    print(f"edge models: external/vision.onnx (+ {data} bytes of external data), symbolic/vision.onnx, symbolic/narrow.onnx in {args.out}")


if __name__ == "__main__":
    main()
