"""Fail the image build when the pouw wheel lacks the compiled work kernel.

setup.py makes the C extension optional (a failed compile only warns, and the
numpy miner is used); in the image a missing compiler is a build bug, so say so.
"""
import glob
import sys
import zipfile

wheels = glob.glob(f"{sys.argv[1]}/pouw-*.whl")
if len(wheels) != 1:
    sys.exit(f"expected one pouw wheel in {sys.argv[1]}, found {wheels}")
names = zipfile.ZipFile(wheels[0]).namelist()
if not any(n.startswith("miner/_kernel") and n.endswith(".so") for n in names):
    sys.exit(f"{wheels[0]} has no miner/_kernel*.so: the C work kernel did not compile")
print(f"{wheels[0]}: includes the C work kernel")
