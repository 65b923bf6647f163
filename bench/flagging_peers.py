"""Peer side of bench/flagging.sh: AOFlagger's flags carried back onto the UVH5 file.

  flags --ms MS --uvh5 ORIGINAL --out FLAGGED
      FLAGGED: a copy of ORIGINAL (h5py, byte for byte but for flag_array) whose flags
      are ORIGINAL's OR the flags the Measurement Set MS holds (AOFlagger's, after it
      ran on a Measurement Set made from ORIGINAL), matched sample by sample: the
      baseline-time by its time (the same order of distinct times) and its two
      antennas (by name), the channel by frequency, the polarization by its code.
      Prints one JSON object: the rows matched and the fraction flagged.
"""
import argparse
import json
import shutil
import sys
import time
import warnings

import numpy as np


def cmd_flags(a):
    warnings.simplefilter("ignore")
    import h5py
    from casacore.tables import table

    t0 = time.perf_counter()
    ms = table(a.ms, ack=False)
    flag = ms.getcol("FLAG")  # rows x channels x polarizations
    ant1, ant2 = ms.getcol("ANTENNA1"), ms.getcol("ANTENNA2")
    mtime = ms.getcol("TIME")
    ms.close()
    names = table(a.ms + "/ANTENNA", ack=False).getcol("NAME")
    spw = table(a.ms + "/SPECTRAL_WINDOW", ack=False)
    mfreq = spw.getcol("CHAN_FREQ")[0]
    spw.close()
    corr = table(a.ms + "/POLARIZATION", ack=False).getcol("CORR_TYPE")[0]
    # CASA's Stokes codes to AIPS's: XX 9 -> -5, YY 12 -> -6, XY 10 -> -7, YX 11 -> -8.
    casa_to_aips = {9: -5, 10: -7, 11: -8, 12: -6, 5: -1, 8: -2, 6: -3, 7: -4}
    mpol = [casa_to_aips[int(c)] for c in corr]

    shutil.copyfile(a.uvh5, a.out)
    with h5py.File(a.out, "r+") as f:
        h = f["Header"]
        utime = h["time_array"][()]
        a1 = h["ant_1_array"][()]
        a2 = h["ant_2_array"][()]
        num = h["antenna_numbers"][()]
        unames = [n.decode() if isinstance(n, bytes) else str(n) for n in h["antenna_names"][()]]
        ufreq = np.ravel(h["freq_array"][()])
        upol = list(h["polarization_array"][()])
        name_of = dict(zip(num, unames))
        index_of_name = {str(n): i for i, n in enumerate(names)}
        # Times in order on both sides (the MS's in seconds, the file's in JD).
        ut = np.unique(utime)
        mt = np.unique(mtime)
        if len(ut) != len(mt):
            raise SystemExit(f"{len(ut)} times in the file, {len(mt)} in the MS")
        tix_u = np.searchsorted(ut, utime)
        tix_m = np.searchsorted(mt, mtime)
        row_of = {}
        for r in range(len(ant1)):
            i, j = int(ant1[r]), int(ant2[r])
            row_of[(int(tix_m[r]), min(i, j), max(i, j))] = r
        cmap = np.array([int(np.argmin(np.abs(mfreq - fr))) for fr in ufreq])
        if np.max(np.abs(mfreq[cmap] - ufreq)) > 1.0:
            raise SystemExit("channels do not match")
        pmap = [mpol.index(p) for p in upol]
        fl = f["Data"]["flags"]
        shape = fl.shape
        missing = 0
        chunk = 4096
        for b0 in range(0, len(utime), chunk):
            b1 = min(len(utime), b0 + chunk)
            block = fl[b0:b1]
            flat = block.reshape(b1 - b0, len(ufreq), len(upol))
            for k in range(b0, b1):
                i = index_of_name[name_of[a1[k]]]
                j = index_of_name[name_of[a2[k]]]
                r = row_of.get((int(tix_u[k]), min(i, j), max(i, j)))
                if r is None:
                    missing += 1
                    continue
                flat[k - b0] |= flag[r][cmap][:, pmap]
            fl[b0:b1] = flat.reshape(block.shape)
        total = float(np.mean(fl[()]))
    json.dump({"out": a.out, "rows": int(len(utime)), "missing": missing,
               "fraction_flagged": total, "shape": list(shape),
               "seconds": time.perf_counter() - t0}, sys.stdout)
    sys.stdout.write("\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("flags")
    s.add_argument("--ms", required=True)
    s.add_argument("--uvh5", required=True)
    s.add_argument("--out", required=True)
    a = p.parse_args()
    {"flags": cmd_flags}[a.cmd](a)


if __name__ == "__main__":
    main()
