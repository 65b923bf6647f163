"""bench/sources_compare.py WORK T_CONTIMG_1 T_CONTIMG T_BDSF -- the catalogues of
bench/sources.sh against the truth: completeness at >= 7 sigma, false detections at
>= 7 sigma, median peak ratio and offset, and time. Prints a Markdown table."""
import csv
import json
import math
import sys

work, t1, tn = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
tb = float(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] else None
RMS, BEAM = 1e-3, 10.0  # Jy/beam, arcsec (the major axis)


def unit(ra, dec):
    a, d = math.radians(ra), math.radians(dec)
    return (math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d))


def sep(u, v):  # arcsec
    c = (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])
    return math.degrees(math.atan2(math.sqrt(sum(x * x for x in c)), sum(a * b for a, b in zip(u, v)))) * 3600


truth = [dict(ra=float(r["ra_deg"]), dec=float(r["dec_deg"]), peak=float(r["peak_jy"]), snr=float(r["snr"]))
         for r in csv.DictReader(open(f"{work}/truth.csv"))]
for t in truth:
    t["u"] = unit(t["ra"], t["dec"])


def load_contimg(path):
    j = json.load(open(path))
    return [dict(ra=s["ra_deg"], dec=s["dec_deg"], peak=s["peak_jy"], snr=s["snr"]) for s in j["sources"]]


def load_bdsf(path):
    lines = [l for l in open(path) if l.strip() and (not l.startswith("#") or l.startswith("# Source_id"))]
    lines = [l[2:] if l.startswith("# ") else l for l in lines]
    rows = list(csv.DictReader([l.replace(" ", "") for l in lines]))
    out = []
    for r in rows:
        rms = float(r["Isl_rms"])
        out.append(dict(ra=float(r["RA"]), dec=float(r["DEC"]), peak=float(r["Peak_flux"]),
                        snr=float(r["Peak_flux"]) / rms if rms > 0 else 0))
    return out


def score(cat):
    for s in cat:
        s["u"] = unit(s["ra"], s["dec"])
    # Grid the detections by declination strip for a quick nearest search.
    used = [False] * len(cat)
    want = [t for t in truth if t["snr"] >= 7]
    found, ratios, offs = 0, [], []
    for t in truth:
        best, bd = None, 0.5 * BEAM
        for i, s in enumerate(cat):
            if abs(s["dec"] - t["dec"]) * 3600 > bd:
                continue
            d = sep(t["u"], s["u"])
            if d < bd:
                best, bd = i, d
        if best is not None:
            used[best] = True
            if t["snr"] >= 7:
                found += 1
                ratios.append(cat[best]["peak"] / t["peak"])
                offs.append(bd / BEAM)
    det7 = [i for i, s in enumerate(cat) if s["snr"] >= 7]
    false7 = sum(1 for i in det7 if not used[i])
    med = lambda v: sorted(v)[len(v) // 2] if v else float("nan")
    return dict(n=len(cat), complete=found / len(want), want=len(want), det7=len(det7), false7=false7,
                ratio=med(ratios), off=med(offs))


rows = [("contimg sources, 1 thread", score(load_contimg(f"{work}/contimg1.json")), t1),
        ("contimg sources, all threads", score(load_contimg(f"{work}/contimg.json")), tn)]
if tb is not None:
    rows.append(("PyBDSF, 1 thread", score(load_bdsf(f"{work}/bdsf.csv")), tb))
print("| finder | detections | completeness >= 7 sigma | false >= 7 sigma | median peak ratio | median offset (beams) | seconds |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for name, s, t in rows:
    print(f"| {name} | {s['n']} | {100 * s['complete']:.1f} % of {s['want']} | {s['false7']} of {s['det7']} "
          f"| {s['ratio']:.4f} | {s['off']:.3f} | {t:.2f} |")
if tb is not None:
    print(f"\ncontimg (1 thread) is {tb / t1:.0f} x PyBDSF's speed")
    # Agreement between the two catalogues themselves: of each one's detections at >= 7
    # sigma, how many the other has within half a beam, and their peak fluxes' ratio.
    a = [s for s in load_contimg(f"{work}/contimg1.json") if s["snr"] >= 7]
    b = [s for s in load_bdsf(f"{work}/bdsf.csv") if s["snr"] >= 7]
    for s in a + b:
        s["u"] = unit(s["ra"], s["dec"])
    b_by_dec = sorted(b, key=lambda s: s["dec"])
    decs = [s["dec"] for s in b_by_dec]
    import bisect
    both, ratios = 0, []
    for s in a:
        lo = bisect.bisect_left(decs, s["dec"] - 0.5 * BEAM / 3600)
        hi = bisect.bisect_right(decs, s["dec"] + 0.5 * BEAM / 3600)
        best = min(b_by_dec[lo:hi], key=lambda t: sep(s["u"], t["u"]), default=None)
        if best is not None and sep(s["u"], best["u"]) < 0.5 * BEAM:
            both += 1
            ratios.append(s["peak"] / best["peak"])
    ratios.sort()
    print(f"agreement: {both} of contimg's {len(a)} and PyBDSF's {len(b)} detections at >= 7 "
          f"sigma are in both; peak ratio contimg / PyBDSF median "
          f"{ratios[len(ratios) // 2] if ratios else float('nan'):.4f}")
