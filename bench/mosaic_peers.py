"""Peer side of bench/mosaic.sh: the same primary-beam-weighted linear mosaic
as `contimg mosaic`, made with Montage, SWarp and astropy's reproject, and the
flux errors of any of these mosaics against the truth catalogue.

    M = sum_p A_p I_p w_p / sum_p A_p^2 w_p,   w_p = 1 / sigma_p^2,
    blank where sum_p A_p^2 w_p < cutoff^2 x its maximum,

A_p the Airy power pattern of a 4.65 m dish at CRVAL3 centred on image p's
CRVAL, sigma_p = 1.4826 MAD of its finite pixels (as src/mosaic.h).

Subcommands (each prints one JSON object on stdout):

  grid     --inputs F... [--header-out FILE]
      The TAN grid this script makes when contimg's is not at hand: tangent
      point the mean of the inputs' pointings, the inputs' cell, just covering
      the union of their footprints.
  run      --inputs F... --work DIR [--grid FITS] [--tools montage,swarp,reproject]
           [--cutoff C]
      Each peer's mosaic on the grid of FITS (contimg's PREFIX.fits) or, without
      --grid, on `grid`'s. Per input, in its own pixel grid, A_p, sigma_p and the
      images the peers need are computed first (numerator A I w, denominator
      A^2 w; SWarp's I/A and A^2 w): cheap, the same for every peer, NOT timed.
      Timed: each peer's reprojection and co-addition, from reading those
      files to writing DIR/<tool>.fits (wall seconds, one thread).
  measure  --truth truth.json --mosaic NAME=FITS... [--margin 30]
      Flux errors at the truth sources that lie unblanked in EVERY given mosaic
      and at least MARGIN px from its edges: the peak near the expected pixel
      (a 2-D quadratic fitted to the log of the 3 x 3 pixels around the
      maximum, exact for a Gaussian beam) against the catalogue flux.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
import warnings

import numpy as np

# The sky model's own beam and geometry: one definition for inputs and peers.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mosaic_inputs import airy_power, unit_vectors  # noqa: E402

TOOLS = ("montage", "swarp", "reproject")


def out(obj):
    json.dump(obj, sys.stdout)
    sys.stdout.write("\n")


def quiet():
    warnings.simplefilter("ignore")


# ------------------------------------------------------------------ geometry
def read_input(path):
    """(2-D float64 data, full header, 2-D celestial WCS) of an input image."""
    from astropy.io import fits
    from astropy.wcs import WCS

    with fits.open(path, memmap=False) as hl:
        h = hl[0].header.copy()
        d = np.asarray(hl[0].data, dtype=np.float64)
    while d.ndim > 2:
        d = d[0]
    return d, h, WCS(h).celestial


def beam_of(h, w, shape, chunk=256):
    """A_p at every pixel of an input: theta = distance from CRVAL1/2."""
    freq = float(h["CRVAL3"])
    ny, nx = shape
    c = unit_vectors(float(h["CRVAL1"]), float(h["CRVAL2"]))
    a = np.empty(shape)
    xs = np.arange(nx, dtype=np.float64)
    for y0 in range(0, ny, chunk):
        y1 = min(ny, y0 + chunk)
        px, py = np.meshgrid(xs, np.arange(y0, y1, dtype=np.float64))
        ra, dec = w.wcs_pix2world(px, py, 0)
        v = unit_vectors(ra, dec)
        sin_t = np.linalg.norm(np.cross(v, c), axis=-1)
        a[y0:y1] = airy_power(sin_t, freq)
    return a


def mad_sigma(d):
    f = d[np.isfinite(d)]
    med = np.median(f)
    return 1.4826 * float(np.median(np.abs(f - med)))


def celestial_header(w, nx, ny):
    """A plain 2-D header (CDELT, no PC rotation) for a celestial WCS."""
    from astropy.io import fits

    pc = w.wcs.get_pc()
    if not np.allclose(pc, np.eye(2), atol=1e-10):
        raise SystemExit("grid: rotated output grids are not supported")
    cdelt = w.wcs.get_cdelt()
    h = fits.Header()
    h["SIMPLE"] = True
    h["BITPIX"] = -32
    h["NAXIS"] = 2
    h["NAXIS1"] = int(nx)
    h["NAXIS2"] = int(ny)
    h["CTYPE1"] = w.wcs.ctype[0]
    h["CTYPE2"] = w.wcs.ctype[1]
    h["CRVAL1"] = float(w.wcs.crval[0])
    h["CRVAL2"] = float(w.wcs.crval[1])
    h["CRPIX1"] = float(w.wcs.crpix[0])
    h["CRPIX2"] = float(w.wcs.crpix[1])
    h["CDELT1"] = float(cdelt[0])
    h["CDELT2"] = float(cdelt[1])
    h["CUNIT1"] = "deg"
    h["CUNIT2"] = "deg"
    h["RADESYS"] = "ICRS"
    h["EQUINOX"] = 2000.0
    return h


def footprint_world(w, nx, ny, n=64):
    """Sky positions of points along the edges of an nx x ny image."""
    xs = np.concatenate([np.linspace(-0.5, nx - 0.5, n)] * 2 + [np.full(n, -0.5), np.full(n, nx - 0.5)])
    ys = np.concatenate([np.full(n, -0.5), np.full(n, ny - 0.5)] + [np.linspace(-0.5, ny - 0.5, n)] * 2)
    return w.wcs_pix2world(xs, ys, 0)


def union_grid(paths):
    """The TAN grid covering the union of the inputs at their cell (a 2-D header)."""
    from astropy.io import fits
    from astropy.wcs import WCS

    vecs, cells, edges = [], [], []
    for p in paths:
        h = fits.getheader(p)
        w = WCS(h).celestial
        vecs.append(unit_vectors(float(h["CRVAL1"]), float(h["CRVAL2"])))
        cells.append(abs(float(w.wcs.get_cdelt()[1])))
        edges.append(footprint_world(w, int(h["NAXIS1"]), int(h["NAXIS2"])))
    m = np.sum(vecs, axis=0)
    m /= np.linalg.norm(m)
    ra_c = math.degrees(math.atan2(m[1], m[0])) % 360.0
    dec_c = math.degrees(math.asin(m[2]))
    cell = float(np.median(cells))
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra_c, dec_c]
    w.wcs.crpix = [1.0, 1.0]
    w.wcs.cdelt = [-cell, cell]
    w.wcs.radesys = "ICRS"
    ra = np.concatenate([e[0] for e in edges])
    dec = np.concatenate([e[1] for e in edges])
    x, y = w.wcs_world2pix(ra, dec, 0)
    # pixel centres just covering the edges (which are pixel borders)
    x0, x1 = int(math.floor(x.min() + 0.5)), int(math.ceil(x.max() - 0.5))
    y0, y1 = int(math.floor(y.min() + 0.5)), int(math.ceil(y.max() - 0.5))
    w.wcs.crpix = [1.0 - x0, 1.0 - y0]
    return celestial_header(w, x1 - x0 + 1, y1 - y0 + 1)


def grid_from_fits(path):
    """The 2-D celestial grid of an existing mosaic (contimg's PREFIX.fits)."""
    from astropy.io import fits
    from astropy.wcs import WCS

    h = fits.getheader(path)
    return celestial_header(WCS(h).celestial, h["NAXIS1"], h["NAXIS2"])


def tan_pixel_solid_angle(gh):
    """Solid angle (sr) of every pixel of a TAN grid: cell^2 cos^3(rho)."""
    nx, ny = gh["NAXIS1"], gh["NAXIS2"]
    cx = math.radians(abs(gh["CDELT1"]))
    cy = math.radians(abs(gh["CDELT2"]))
    x = (np.arange(nx) + 1 - gh["CRPIX1"]) * cx
    y = (np.arange(ny) + 1 - gh["CRPIX2"]) * cy
    r2 = y[:, None] ** 2 + x[None, :] ** 2
    return cx * cy / (1.0 + r2) ** 1.5


def write_2d(path, data, h, bunit=None):
    from astropy.io import fits

    hh = h.copy()
    hh["BITPIX"] = -32
    if bunit:
        hh["BUNIT"] = bunit
    fits.PrimaryHDU(np.asarray(data, dtype=np.float32), header=hh).writeto(
        path, overwrite=True, output_verify="silentfix")


def finish(num, den, cutoff):
    """M = num / den, blank where den < cutoff^2 max(den) or nothing covers it."""
    den = np.where(np.isfinite(den), den, 0.0)
    top = float(den.max()) if den.size else 0.0
    ok = (den > 0) & (den >= cutoff * cutoff * top) & np.isfinite(num)
    m = np.full(den.shape, np.nan)
    m[ok] = num[ok] / den[ok]
    return m, int(np.count_nonzero(~ok))


# ------------------------------------------------------------------ precompute
def precompute(paths, work, tools):
    """Per input, in its own grid: the numerator A I w and denominator A^2 w
    (Montage, reproject), I/A and the weight map A^2 w (SWarp), all 2-D FITS."""
    info = []
    for sub in ("num", "den", "ia", "wt"):
        os.makedirs(os.path.join(work, "pre", sub), exist_ok=True)
    for i, p in enumerate(paths):
        d, h, w = read_input(p)
        a = beam_of(h, w, d.shape)
        sigma = mad_sigma(d)
        wgt = 1.0 / (sigma * sigma)
        good = np.isfinite(d) & (a > 1e-6)
        dz = np.where(good, d, 0.0)
        az = np.where(good, a, 0.0)
        base = celestial_header(w, d.shape[1], d.shape[0])
        for k in ("BMAJ", "BMIN", "BPA", "DATE-OBS"):
            if k in h:
                base[k] = h[k]
        name = "in%03d" % i
        rec = {"path": p, "sigma_jy": sigma, "nx": d.shape[1], "ny": d.shape[0]}
        if "montage" in tools or "reproject" in tools:
            rec["num"] = os.path.join(work, "pre", "num", name + ".fits")
            rec["den"] = os.path.join(work, "pre", "den", name + ".fits")
            write_2d(rec["num"], az * dz * wgt, base, "JY/BEAM/JY2")
            write_2d(rec["den"], az * az * wgt, base, "1/JY2")
        if "swarp" in tools:
            rec["ia"] = os.path.join(work, "pre", "ia", name + ".fits")
            rec["wt"] = os.path.join(work, "pre", "wt", name + ".weight.fits")
            ia = np.zeros_like(dz)
            ia[good] = dz[good] / az[good]
            write_2d(rec["ia"], ia, base, "JY/BEAM")
            write_2d(rec["wt"], az * az * wgt, base, "1/JY2")
        info.append(rec)
    return info


def run_cmd(cmd, log):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write("$ " + " ".join(cmd) + "\n" + r.stdout)
    if r.returncode != 0:
        raise RuntimeError("%s failed (rc %d): %s" % (cmd[0], r.returncode, r.stdout[-2000:]))
    return r.stdout


# ------------------------------------------------------------------ Montage
def run_montage(pre, gh, work, cutoff):
    """mProjectPP each numerator and denominator onto the template, mAdd each
    set. This Montage (6.0) has no summing mAdd: its modes are mean, median and
    count, and `-a mean` gives sum_p(v_p a_p) / sum_p(a_p), a_p the area of the
    output pixel input p covers (the _area images mProjectPP writes). The same
    a_p weigh the numerator and the denominator, so
        mean(num) / mean(den) = sum_p a_p A I w / sum_p a_p A^2 w,
    which is the mosaic (a_p = the pixel's solid angle wherever input p covers
    it whole). For the blanking cut, sum_p A^2 w = mean(den) x area / solid
    angle of the pixel (mAdd's output _area image is sum_p a_p, in sr).
    mProjectPP resamples by exact pixel overlap (flux-conserving drizzle of the
    input pixels onto the output pixel, surface brightness kept), Montage's
    only algorithm: no interpolation kernel to choose."""
    from astropy.io import fits

    d = os.path.join(work, "montage")
    shutil.rmtree(d, ignore_errors=True)
    for sub in ("num", "den"):
        os.makedirs(os.path.join(d, sub))
    tmpl = os.path.join(d, "template.hdr")
    th = gh.copy()
    th["BITPIX"] = -64
    with open(tmpl, "w") as f:
        for card in th.cards:
            f.write(str(card).rstrip() + "\n")
        f.write("END\n")
    log = open(os.path.join(d, "log.txt"), "w")
    cmds = []
    t0 = time.perf_counter()
    for rec in pre:
        for sub in ("num", "den"):
            src = rec[sub]
            dst = os.path.join(d, sub, os.path.basename(src))
            cmd = ["mProjectPP", src, dst, tmpl]
            run_cmd(cmd, log)
            cmds.append(cmd)
    sums = {}
    for sub in ("num", "den"):
        tbl = os.path.join(d, sub + ".tbl")
        cmd = ["mImgtbl", os.path.join(d, sub), tbl]
        run_cmd(cmd, log)
        cmds.append(cmd)
        res = os.path.join(d, sub + "-mean.fits")
        cmd = ["mAdd", "-e", "-p", os.path.join(d, sub), tbl, tmpl, res]
        run_cmd(cmd, log)
        cmds.append(cmd)
        with fits.open(res, memmap=False) as hl:
            sums[sub] = np.asarray(hl[0].data, dtype=np.float64)
        with fits.open(res.replace(".fits", "_area.fits"), memmap=False) as hl:
            sums[sub + "_area"] = np.asarray(hl[0].data, dtype=np.float64)
    num, den = sums["num"], sums["den"]
    den_sum = den * sums["den_area"] / tan_pixel_solid_angle(gh)
    ok = np.isfinite(num) & np.isfinite(den) & (den > 0)
    ratio = np.where(ok, num / np.where(ok, den, 1.0), np.nan)
    m, nblank = finish(np.where(ok, ratio * den_sum, np.nan), np.where(ok, den_sum, 0.0), cutoff)
    path = os.path.join(work, "montage.fits")
    write_2d(path, m, gh, "JY/BEAM")
    secs = time.perf_counter() - t0
    log.close()
    rel = lambda c: " ".join(x.replace(work.rstrip("/") + "/", "") for x in c)
    return secs, path, nblank, [
        rel(cmds[0]) + "   (x %d: the numerator and denominator of each input)" % (2 * len(pre)),
        rel(cmds[2 * len(pre)]) + "   (and the same for den)",
        rel(cmds[2 * len(pre) + 1]) + "   (and the same for den; -a mean is the default)",
        "then M = num-mean.fits / den-mean.fits, blanked where den-mean x den-mean_area / "
        "pixel solid angle < cutoff^2 x its max",
    ], cmds


# ------------------------------------------------------------------ SWarp
def run_swarp(pre, gh, work, cutoff, resampling="LANCZOS3"):
    """SWarp's weighted mean of I/A with weights A^2 w,
        sum_p (A^2 w)(I/A) / sum_p A^2 w = sum_p A I w / sum_p A^2 w,
    is the mosaic (exactly so on the inputs' own pixels; SWarp resamples the
    image and the weight map separately). The output grid is pinned twice: by
    CENTER/PIXEL_SCALE/IMAGE_SIZE (TAN, manual) and by an output .head file with
    the grid's exact CRPIX/CRVAL/CDELT (SWarp reads <IMAGEOUT_NAME>.head), so a
    grid whose tangent point is not its centre pixel is matched too. FLXSCALE:
    FSCALASTRO_TYPE NONE and no FLXSCALE keyword in the inputs (FSCALE_DEFAULT
    1), RESCALE_WEIGHTS N (SWarp would otherwise rescale each weight map to its
    image's measured noise), SUBTRACT_BACK N; the result is checked against
    the numerator/denominator on the inputs' own pixels in `run`'s JSON."""
    from astropy.io import fits
    from astropy.wcs import WCS

    exe = shutil.which("SWarp") or shutil.which("swarp")
    if not exe:
        raise RuntimeError("SWarp is not installed (apt-get install swarp)")
    d = os.path.join(work, "swarp")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    outp = os.path.join(d, "coadd.fits")
    wout = os.path.join(d, "coadd.weight.fits")
    nx, ny = gh["NAXIS1"], gh["NAXIS2"]
    # the sky position of the grid's centre (SWarp's CENTER)
    ra_c, dec_c = WCS(gh).wcs_pix2world([(nx - 1) / 2.0], [(ny - 1) / 2.0], 0)
    head = gh.copy()
    for k in ("SIMPLE", "BITPIX", "NAXIS"):
        del head[k]
    with open(os.path.join(d, "coadd.head"), "w") as f:
        for card in head.cards:
            f.write(str(card).rstrip() + "\n")
        f.write("END\n")
    cfg = os.path.join(d, "default.swarp")
    with open(cfg, "w") as f:
        f.write("# every setting is given on the command line\n")
    cmd = [exe] + [r["ia"] for r in pre] + [
        "-c", cfg,
        "-IMAGEOUT_NAME", outp, "-WEIGHTOUT_NAME", wout, "-HEADER_SUFFIX", ".head",
        "-WEIGHT_TYPE", "MAP_WEIGHT", "-WEIGHT_IMAGE", ",".join(r["wt"] for r in pre),
        "-RESCALE_WEIGHTS", "N",
        "-COMBINE", "Y", "-COMBINE_TYPE", "WEIGHTED",
        "-CELESTIAL_TYPE", "NATIVE", "-PROJECTION_TYPE", "TAN",
        "-CENTER_TYPE", "MANUAL", "-CENTER", "%.10f,%.10f" % (float(ra_c[0]), float(dec_c[0])),
        "-PIXELSCALE_TYPE", "MANUAL", "-PIXEL_SCALE", "%.10g" % (abs(gh["CDELT2"]) * 3600.0),
        "-IMAGE_SIZE", "%d,%d" % (nx, ny),
        "-RESAMPLE", "Y", "-RESAMPLING_TYPE", resampling, "-OVERSAMPLING", "1",
        "-RESAMPLE_DIR", d, "-DELETE_TMPFILES", "Y",
        "-SUBTRACT_BACK", "N", "-FSCALASTRO_TYPE", "NONE", "-FSCALE_DEFAULT", "1.0",
        "-BLANK_BADPIXELS", "Y", "-INTERPOLATE", "N",
        "-MEM_MAX", "2048", "-COMBINE_BUFSIZE", "1024", "-VMEM_DIR", d,
        "-NTHREADS", "1", "-WRITE_XML", "N", "-VERBOSE_TYPE", "QUIET",
    ]
    log = open(os.path.join(d, "log.txt"), "w")
    t0 = time.perf_counter()
    run_cmd(cmd, log)
    with fits.open(outp, memmap=False) as hl:
        img = np.asarray(hl[0].data, dtype=np.float64)
        oh = hl[0].header
    with fits.open(wout, memmap=False) as hl:
        wsum = np.asarray(hl[0].data, dtype=np.float64)
    img = np.where(np.isfinite(img), img, np.nan)
    m, nblank = finish(img * wsum, wsum, cutoff)
    path = os.path.join(work, "swarp.fits")
    write_2d(path, m, gh, "JY/BEAM")
    secs = time.perf_counter() - t0
    log.close()
    same = all(abs(float(oh.get(k, np.nan)) - float(gh[k])) < 1e-9 * max(1.0, abs(float(gh[k])))
               for k in ("NAXIS1", "NAXIS2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2"))
    pretty = " ".join(c.replace(work.rstrip("/") + "/", "") for c in cmd).replace(exe, "SWarp")
    return secs, path, nblank, [pretty], [cmd], {
        "grid_matches": bool(same), "flxscale": oh.get("FLXSCALE"),
        "output_header": {k: oh.get(k) for k in ("NAXIS1", "NAXIS2", "CRPIX1", "CRPIX2",
                                                  "CRVAL1", "CRVAL2", "CDELT1", "CDELT2")}}


# ------------------------------------------------------------------ reproject
def run_reproject(pre, gh, work, cutoff, order="bicubic"):
    """reproject_interp of the stacked (numerator, denominator) of each input
    onto the part of the output grid its footprint covers (one coordinate
    transformation for both planes), summed, divided."""
    from astropy.io import fits
    from astropy.wcs import WCS
    from reproject import reproject_interp

    wo = WCS(gh)
    nx, ny = gh["NAXIS1"], gh["NAXIS2"]
    num = np.zeros((ny, nx))
    den = np.zeros((ny, nx))
    t0 = time.perf_counter()
    for rec in pre:
        with fits.open(rec["num"], memmap=False) as hl:
            a = np.asarray(hl[0].data, dtype=np.float64)
            hin = hl[0].header
        with fits.open(rec["den"], memmap=False) as hl:
            b = np.asarray(hl[0].data, dtype=np.float64)
        wi = WCS(hin)
        ra, dec = footprint_world(wi, a.shape[1], a.shape[0])
        x, y = wo.wcs_world2pix(ra, dec, 0)
        x0 = max(0, int(math.floor(x.min())) - 1)
        x1 = min(nx, int(math.ceil(x.max())) + 2)
        y0 = max(0, int(math.floor(y.min())) - 1)
        y1 = min(ny, int(math.ceil(y.max())) + 2)
        if x0 >= x1 or y0 >= y1:
            continue
        sub = wo.deepcopy()
        sub.wcs.crpix = [gh["CRPIX1"] - x0, gh["CRPIX2"] - y0]
        arr, fp = reproject_interp((np.stack([a, b]), wi), sub, shape_out=(2, y1 - y0, x1 - x0),
                                   order=order)
        ok = (fp[0] > 0) & (fp[1] > 0) & np.isfinite(arr[0]) & np.isfinite(arr[1])
        num[y0:y1, x0:x1] += np.where(ok, arr[0], 0.0)
        den[y0:y1, x0:x1] += np.where(ok, arr[1], 0.0)
    m, nblank = finish(num, den, cutoff)
    path = os.path.join(work, "reproject.fits")
    write_2d(path, m, gh, "JY/BEAM")
    secs = time.perf_counter() - t0
    return secs, path, nblank, [
        "reproject_interp((stack([num, den]), wcs_in), wcs_out[cutout], shape_out, order='%s')"
        "   (x %d, one per input, summed; then num/den)" % (order, len(pre))], []


# ------------------------------------------------------------------ commands
def cmd_grid(a):
    quiet()
    gh = union_grid(a.inputs)
    if a.header_out:
        with open(a.header_out, "w") as f:
            f.write(gh.tostring(sep="\n"))
    out({k: gh[k] for k in ("NAXIS1", "NAXIS2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2",
                            "CDELT1", "CDELT2", "CTYPE1", "CTYPE2")})


def cmd_run(a):
    quiet()
    tools = [t for t in a.tools.split(",") if t]
    for t in tools:
        if t not in TOOLS:
            raise SystemExit("run: unknown tool '%s' (%s)" % (t, ",".join(TOOLS)))
    os.makedirs(a.work, exist_ok=True)
    gh = grid_from_fits(a.grid) if a.grid else union_grid(a.inputs)
    grid_src = a.grid or "computed (union of the inputs, TAN)"
    t0 = time.perf_counter()
    pre = precompute(a.inputs, a.work, tools)
    t_pre = time.perf_counter() - t0
    nx, ny = gh["NAXIS1"], gh["NAXIS2"]
    res = {"grid": {"source": grid_src, "nx": nx, "ny": ny,
                    "crval": [gh["CRVAL1"], gh["CRVAL2"]], "crpix": [gh["CRPIX1"], gh["CRPIX2"]],
                    "cell_arcsec": abs(gh["CDELT2"]) * 3600.0},
           "precompute_seconds": round(t_pre, 3),
           "sigma_jy": [r["sigma_jy"] for r in pre], "cutoff": a.cutoff, "tools": {}}
    for t in tools:
        extra = {}
        try:
            if t == "montage":
                secs, path, nblank, pretty, _ = run_montage(pre, gh, a.work, a.cutoff)
            elif t == "swarp":
                secs, path, nblank, pretty, _, extra = run_swarp(pre, gh, a.work, a.cutoff,
                                                                 a.swarp_resampling)
            else:
                secs, path, nblank, pretty, _ = run_reproject(pre, gh, a.work, a.cutoff)
        except Exception as e:  # report, go on with the other peers
            res["tools"][t] = {"error": str(e)}
            sys.stderr.write("mosaic_peers: %s: %s\n" % (t, e))
            continue
        px = nx * ny
        res["tools"][t] = dict({
            "seconds": round(secs, 3), "cores": 1, "nx": nx, "ny": ny, "pixels": px,
            "n_blank": nblank, "mpix_per_s_per_core": px / secs / 1e6, "path": path,
            "commands": pretty}, **extra)
    out(res)


def fit_peak(data, xm, ym):
    """Peak of the 3 x 3 pixels around (xm, ym): a 2-D quadratic fitted to
    their log (a Gaussian, exact for a Gaussian beam), or to the values
    themselves when one is <= 0; the pixel value if the fit has no maximum
    within a pixel."""
    p = data[ym - 1:ym + 2, xm - 1:xm + 2]
    if p.shape != (3, 3) or not np.all(np.isfinite(p)):
        return None
    uselog = bool(np.all(p > 0))
    v = np.log(p) if uselog else p
    c = _PINV @ v.ravel()
    c0, cx, cy, cxx, cxy, cyy = c
    hess = np.array([[2 * cxx, cxy], [cxy, 2 * cyy]])
    try:
        dx, dy = np.linalg.solve(hess, [-cx, -cy])
    except np.linalg.LinAlgError:
        return float(data[ym, xm])
    if not (cxx < 0 and np.linalg.det(hess) > 0 and abs(dx) <= 1 and abs(dy) <= 1):
        return float(data[ym, xm])
    val = c0 + cx * dx + cy * dy + cxx * dx * dx + cxy * dx * dy + cyy * dy * dy
    return float(np.exp(val)) if uselog else float(val)


_DX, _DY = np.meshgrid([-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0])
_DESIGN = np.stack([np.ones(9), _DX.ravel(), _DY.ravel(), _DX.ravel() ** 2,
                    (_DX * _DY).ravel(), _DY.ravel() ** 2], axis=1)
_PINV = np.linalg.pinv(_DESIGN)


def cmd_measure(a):
    quiet()
    from astropy.io import fits
    from astropy.wcs import WCS

    truth = json.load(open(a.truth))
    src = truth["sources"]
    ra = np.array([s["ra"] for s in src])
    dec = np.array([s["dec"] for s in src])
    flux = np.array([s["flux"] for s in src])
    cell = float(truth["cell_arcsec"])
    search = max(2, int(math.ceil(0.5 * float(truth["beam_arcsec"]) / cell)))
    mos = []
    for spec in a.mosaic:
        name, _, path = spec.partition("=")
        with fits.open(path, memmap=False) as hl:
            d = np.asarray(hl[0].data, dtype=np.float64)
            h = hl[0].header
        while d.ndim > 2:
            d = d[0]
        x, y = WCS(h).celestial.wcs_world2pix(ra, dec, 0)
        mos.append((name, path, d, x, y))
    valid = np.ones(len(src), dtype=bool)
    r = search + 2
    for _, _, d, x, y in mos:
        ny, nx = d.shape
        for s in range(len(src)):
            if not valid[s]:
                continue
            xi, yi = int(round(x[s])), int(round(y[s]))
            if not (a.margin <= xi < nx - a.margin and a.margin <= yi < ny - a.margin):
                valid[s] = False
                continue
            if not np.all(np.isfinite(d[yi - r:yi + r + 1, xi - r:xi + r + 1])):
                valid[s] = False
    idx = np.nonzero(valid)[0]
    res = {"sources_in_truth": len(src), "sources_measured": int(len(idx)),
           "margin_px": a.margin, "search_px": search, "mosaics": {}}
    for name, path, d, x, y in mos:
        errs, fl = [], []
        for s in idx:
            xi, yi = int(round(x[s])), int(round(y[s]))
            box = d[yi - search:yi + search + 1, xi - search:xi + search + 1]
            j, i = np.unravel_index(int(np.argmax(box)), box.shape)
            pk = fit_peak(d, xi - search + i, yi - search + j)
            if pk is None:
                continue
            errs.append(pk / flux[s] - 1.0)
            fl.append(flux[s])
        e = np.array(errs)
        fl = np.array(fl)
        ae = np.abs(e)
        bright = ae[fl >= 0.5]
        res["mosaics"][name] = {
            "path": path, "n": int(len(e)),
            "median_abs_err": float(np.median(ae)) if len(e) else None,
            "p95_abs_err": float(np.percentile(ae, 95)) if len(e) else None,
            "max_abs_err": float(ae.max()) if len(e) else None,
            "mean_err": float(e.mean()) if len(e) else None,
            "median_abs_err_bright": float(np.median(bright)) if len(bright) else None,
            "n_bright": int(len(bright)),
        }
    out(res)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grid")
    g.add_argument("--inputs", nargs="+", required=True)
    g.add_argument("--header-out")
    g.set_defaults(fn=cmd_grid)
    r = sub.add_parser("run")
    r.add_argument("--inputs", nargs="+", required=True)
    r.add_argument("--work", required=True)
    r.add_argument("--grid", help="a FITS file whose WCS and size are the output grid")
    r.add_argument("--tools", default=",".join(TOOLS))
    r.add_argument("--cutoff", type=float, default=0.1)
    r.add_argument("--swarp-resampling", default="LANCZOS3")
    r.set_defaults(fn=cmd_run)
    m = sub.add_parser("measure")
    m.add_argument("--truth", required=True)
    m.add_argument("--mosaic", action="append", required=True, metavar="NAME=FITS")
    m.add_argument("--margin", type=int, default=30)
    m.set_defaults(fn=cmd_measure)
    a = p.parse_args(argv)
    a.fn(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
