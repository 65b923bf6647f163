"""pyuvdata, the reference implementation of UVH5, against contimg's files.

Usage: check_pyuvdata.py SIM_DIR OUT_DIR

1. Reads each of the 16 subband files in SIM_DIR with pyuvdata, all checks
   on (run_check, check_extra, run_check_acceptability), and compares what it
   finds with the same file read by h5py: every visibility, flag and sample
   count, uvw, times, frequencies, antennas, the site.
2. Writes each again with pyuvdata's own writer into OUT_DIR under the same
   name: a DSA-like observation written by pyuvdata, for contimg to read.
Ends with "N passed, M failed"; exits non-zero on any failure.
"""
import glob
import os
import sys
import warnings

import h5py
import numpy as np
from astropy.utils import iers

# Nothing may be fetched: use the tables astropy ships with.
iers.conf.auto_download = False
iers.conf.auto_max_age = None
iers.conf.iers_degraded_accuracy = "warn"

from pyuvdata import UVData  # noqa: E402

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL", what)


sim_dir, out_dir = sys.argv[1], sys.argv[2]
os.makedirs(out_dir, exist_ok=True)
files = sorted(glob.glob(os.path.join(sim_dir, "*_sb[0-9][0-9].hdf5")))
check(len(files) == 16, f"16 subband files in {sim_dir} (found {len(files)})")

for path in files:
    name = os.path.basename(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        uv = UVData.from_file(path, file_type="uvh5", run_check=True, check_extra=True,
                              run_check_acceptability=True)
    # The one warning DSA-110 files draw by design: "drift" data whose uvw are
    # projected to the meridian, not to zenith as pyuvdata assumes for drift.
    other = [str(w.message) for w in caught
             if "uvw_array does not match" not in str(w.message)
             and "IERS" not in str(w.message) and "leap-second" not in str(w.message)
             and "Tried to get polar motions" not in str(w.message)]
    check(not other, f"{name}: unexpected warnings {other[:2]}")

    with h5py.File(path, "r") as f:
        hdr = f["Header"]
        vis = f["Data/visdata"][()]
        flags = f["Data/flags"][()]
        nsamples = f["Data/nsamples"][()]
        # The correlator's 4-D shape (Nblts, 1, Nfreqs, Npols).
        check(vis.ndim == 4 and vis.shape[1] == 1, f"{name}: 4-D data")
        vis, flags, nsamples = vis[:, 0], flags[:, 0], nsamples[:, 0]
        check(np.array_equal(uv.data_array, vis), f"{name}: visibilities equal")
        check(np.array_equal(uv.flag_array, flags.astype(bool)), f"{name}: flags equal")
        check(np.array_equal(uv.nsample_array, nsamples), f"{name}: nsamples equal")
        check(np.array_equal(uv.uvw_array, hdr["uvw_array"][()]), f"{name}: uvw equal")
        check(np.array_equal(uv.time_array, hdr["time_array"][()]), f"{name}: times equal")
        check(np.array_equal(uv.freq_array.ravel(), hdr["freq_array"][()].ravel()),
              f"{name}: frequencies equal")
        check(np.array_equal(uv.ant_1_array, hdr["ant_1_array"][()]) and
              np.array_equal(uv.ant_2_array, hdr["ant_2_array"][()]), f"{name}: antennas equal")
        lon, lat, alt = uv.telescope.location.to_geodetic()  # astropy: lon first
        check(abs(lat.deg - hdr["latitude"][()]) < 1e-9 and abs(lon.deg - hdr["longitude"][()]) < 1e-9
              and abs(alt.value - hdr["altitude"][()]) < 1e-6, f"{name}: site")
    check(uv.Nants_telescope == 117 and list(uv.polarization_array) == [-5, -6],
          f"{name}: 117 stations, XX and YY")
    check(np.all(np.diff(uv.freq_array.ravel()) > 0), f"{name}: channels ascend")

    uv.write_uvh5(os.path.join(out_dir, name), clobber=True)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
