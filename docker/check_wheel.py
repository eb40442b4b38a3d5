"""Fail the image build when the pouw wheel lacks a compiled C extension.

setup.py makes the C extensions optional (a failed compile only warns, and numpy stands
in); in the image a missing compiler is a build bug, so say so.
"""
import glob
import sys
import zipfile

EXTENSIONS = {"miner/_kernel": "the C work kernel", "client/_freivalds": "the client's exact products"}

wheels = glob.glob(f"{sys.argv[1]}/pouw-*.whl")
if len(wheels) != 1:
    sys.exit(f"expected one pouw wheel in {sys.argv[1]}, found {wheels}")
names = zipfile.ZipFile(wheels[0]).namelist()
for stem, what in EXTENSIONS.items():
    if not any(n.startswith(stem) and n.endswith(".so") for n in names):
        sys.exit(f"{wheels[0]} has no {stem}*.so: {what} did not compile")
print(f"{wheels[0]}: includes {' and '.join(EXTENSIONS.values())}")
