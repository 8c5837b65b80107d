"""Prints the size of each Lambda artifact that `make package` built, zipped and unzipped."""

import os
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

for function in ("deploy", "rollback", "scheduler"):
    path = ROOT / "target" / "lambda" / function / "bootstrap.zip"
    if not path.exists():
        sys.exit(f"{path.relative_to(ROOT)} is missing: run make package")
    unzipped = zipfile.ZipFile(path).getinfo("bootstrap").file_size
    print(f"{function:<10} {os.path.getsize(path):>11,} bytes zipped {unzipped:>12,} bytes unzipped")
