"""bench/calibration_peers.py -- QuartiCal's side of bench/calibration.sh.

  python calibration_peers.py model-ms --data DATA.ms --model MODEL.ms
      MODEL.ms's DATA into DATA.ms as MODEL_DATA; autocorrelations flagged in DATA.ms
      (the simulator puts the SEFD there, which no sky model holds).
  python calibration_peers.py compare --quartical GAINDIR --caltable PREFIX.cal.h5
      QuartiCal's bandpass term against contimg's caltable, both referred to the same
      antenna per channel and feed: largest amplitude ratio and phase difference.
      (A Measurement Set holds V_ij conjugated against UVH5, so QuartiCal's gains are
      the conjugates of contimg's.)

Prints one JSON object.
"""
import argparse
import json
import sys

import numpy as np


def cmd_model_ms(a):
    from casacore import tables as pt

    model = pt.table(a.model, ack=False)
    data = pt.table(a.data, readonly=False, ack=False)
    md = model.getcol("DATA")
    if "MODEL_DATA" not in data.colnames():
        desc = data.getcoldesc("DATA")
        desc["name"] = "MODEL_DATA"
        data.addcols(pt.maketabdesc(pt.makecoldesc("MODEL_DATA", desc)))
    data.putcol("MODEL_DATA", md)
    a1, a2 = data.getcol("ANTENNA1"), data.getcol("ANTENNA2")
    flag = data.getcol("FLAG")
    flag[a1 == a2] = True
    data.putcol("FLAG", flag)
    n = int(np.sum(a1 != a2))
    data.close()
    model.close()
    print(json.dumps({"rows": int(len(a1)), "cross_rows": n}))


def cmd_compare(a):
    import glob

    import h5py
    import zarr

    term = sorted(glob.glob(a.quartical + "/B/B_*"))[0]
    g = zarr.open_group(term, mode="r")
    q = np.conj(g["gains"][:][0, :, :, 0, :])  # (freq, antenna, feed)
    qf = g["gain_flags"][:][0, :, :, 0] != 0
    with h5py.File(a.caltable, "r") as f:
        b = f["bandpass"][()]
        c = b[..., 0] + 1j * b[..., 1]
        cf = f["bandpass_flag"][()] != 0
    n = min(c.shape[1], q.shape[1])
    ok = (~cf[:, :n, 0]) & (~cf[:, :n, 1]) & (~qf[:, :n])
    ref = int(np.argmax(ok.all(axis=0)))

    def referred(x):
        return x * np.conj(x[:, ref:ref + 1, :]) / np.abs(x[:, ref:ref + 1, :])

    cq, cc = referred(q[:, :n, :]), referred(c[:, :n, :])
    m = ok[:, :, None] & np.ones((1, 1, 2), bool)
    ratio = np.abs(cq[m]) / np.abs(cc[m])
    dph = np.degrees(np.angle(cq[m] * np.conj(cc[m])))
    print(json.dumps({"solutions": int(m.sum()), "reference": ref,
                      "amp_ratio_max_dev": float(np.max(np.abs(ratio - 1))),
                      "phase_max_deg": float(np.max(np.abs(dph))),
                      "phase_median_deg": float(np.median(np.abs(dph)))}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("model-ms")
    s.add_argument("--data", required=True)
    s.add_argument("--model", required=True)
    s = sub.add_parser("compare")
    s.add_argument("--quartical", required=True)
    s.add_argument("--caltable", required=True)
    a = p.parse_args()
    {"model-ms": cmd_model_ms, "compare": cmd_compare}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
