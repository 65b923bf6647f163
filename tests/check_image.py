"""check_image.py -- contimg's images judged by astropy, with warnings as errors.

  check_image.py sources PREFIX SOURCES_FILE
      Every source of SOURCES_FILE (EAST_DEG NORTH_DEG FLUX_JY per line, offsets from
      the image centre as `contimg simulate --relative` takes them) must appear where
      astropy.wcs, reading our FITS header, puts its ICRS position (within 0.1 pixel,
      from a parabola through the peak and its neighbours), with its flux: within 1 %
      in PREFIX-image.fits for sources within 0.1 deg of the centre, within 2 % in the
      primary-beam corrected PREFIX-image-pb.fits elsewhere (a 4th column "nof" leaves
      a source's flux unchecked: a source between pixels is spread over them).
      With --model-flux after SOURCES_FILE: fluxes from the CLEAN components within 3
      pixels, primary-beam corrected, all within 1 % (for a slant grid, whose pixel
      centres miss the sources).
  check_image.py noise PREFIX JSON SIGMA
      The dirty image's rms (1.4826 MAD) within 10 % of SIGMA / sqrt(2 n_vis), the
      radiometer equation for Stokes I = (XX + YY) / 2 with natural weights.
  check_image.py same PREFIX_A PREFIX_B
      The six images of two runs have identical pixels (bit for bit).
  check_image.py opens PREFIX
      The six images open in astropy.io.fits and astropy.wcs without a warning.
"""
import json
import math
import sys
import warnings

warnings.simplefilter("error")
import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402
from astropy.wcs import WCS  # noqa: E402

SUFFIXES = ["dirty", "psf", "model", "residual", "image", "image-pb"]
failures = 0


def check(ok, what):
    global failures
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures += 1


def load(path):
    with fits.open(path) as hdul:
        hdr = hdul[0].header.copy()
        data = np.array(hdul[0].data[0, 0], dtype=float)
    wcs = WCS(hdr).celestial
    return hdr, data, wcs


def mad_rms(a):
    a = a[np.isfinite(a)]
    return 1.4826 * np.median(np.abs(a - np.median(a)))


def peak_near(img, x, y, r=3):
    ix, iy = int(round(x)), int(round(y))
    sub = img[iy - r:iy + r + 1, ix - r:ix + r + 1]
    j, i = np.unravel_index(np.nanargmax(sub), sub.shape)
    py, px = iy - r + j, ix - r + i
    c = img[py - 1:py + 2, px - 1:px + 2]
    dx = 0.5 * (c[1, 0] - c[1, 2]) / (c[1, 0] - 2 * c[1, 1] + c[1, 2])
    dy = 0.5 * (c[0, 1] - c[2, 1]) / (c[0, 1] - 2 * c[1, 1] + c[2, 1])
    return px + dx, py + dy, px, py


def sources(prefix, srcfile, model_flux=False):
    """With model_flux, a source's flux is its CLEAN components within 3 pixels,
    divided by the primary beam at its peak (image / image-pb there), 1 %: the
    measure for a grid whose pixel centres miss the sources (a slant grid moves
    them by a fraction of a pixel, and at 20 arcsec the beam is barely sampled,
    so a peak pixel 0.2 px off reads a few per cent low)."""
    hdr, img, wcs = load(prefix + "-image.fits")
    _, pbc, _ = load(prefix + "-image-pb.fits")
    if model_flux:
        _, model, _ = load(prefix + "-model.fits")
    ra0, dec0 = math.radians(hdr["CRVAL1"]), math.radians(hdr["CRVAL2"])
    cell = abs(hdr["CDELT1"])
    with open(srcfile) as f:
        rows = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]
    for row in rows:
        e, n, flux = (float(v) for v in row[:3])
        l, m = math.radians(e), math.radians(n)
        nn = math.sqrt(1 - l * l - m * m)
        # The SIN projection inverted about the centre: the source's ICRS position.
        dec = math.asin(m * math.cos(dec0) + nn * math.sin(dec0))
        ra = ra0 + math.atan2(l, nn * math.cos(dec0) - m * math.sin(dec0))
        x, y = (float(v) for v in wcs.world_to_pixel_values(math.degrees(ra), math.degrees(dec)))
        fx, fy, px, py = peak_near(img, x, y)
        err = math.hypot(fx - x, fy - y)
        check(err <= 0.1, f"source ({e:+.3f}, {n:+.3f}) deg: found at ({fx:.3f}, {fy:.3f}), "
                          f"expected ({x:.3f}, {y:.3f}): {err:.3f} px")
        if len(row) > 3 and row[3] == "nof":
            continue
        near = math.hypot(e, n) <= 0.1
        got = img[py, px] if near else pbc[py, px]
        tol = 0.01 if near else 0.02
        if model_flux:  # the components, primary-beam corrected (the 1 % tolerance)
            got = float(np.sum(model[py - 3:py + 4, px - 3:px + 4])) * pbc[py, px] / img[py, px]
            tol = 0.01
        check(abs(got / flux - 1) <= tol,
              f"source ({e:+.3f}, {n:+.3f}) deg: {got:.4f} Jy{'' if near else ' after PB'} "
              f"of {flux} ({100 * (got / flux - 1):+.2f} %, tolerance {100 * tol:.0f} %)")
    print(f"     cell {cell * 3600:.2f} arcsec, rms {mad_rms(img):.3g} Jy/beam")


def noise(prefix, jsonfile, sigma):
    with open(jsonfile) as f:
        r = json.load(f)
    _, img, _ = load(prefix + "-dirty.fits")
    rms = mad_rms(img)
    theory = sigma / math.sqrt(2 * r["n_vis"])
    check(abs(rms / theory - 1) <= 0.10,
          f"noise: rms {rms:.4g} Jy/beam, theory {theory:.4g} ({100 * (rms / theory - 1):+.1f} %)")


def same(a, b):
    for s in SUFFIXES:
        _, x, _ = load(f"{a}-{s}.fits")
        _, y, _ = load(f"{b}-{s}.fits")
        check(np.array_equal(x, y, equal_nan=True), f"{s}: identical pixels")


def opens(prefix):
    for s in SUFFIXES:
        hdr, img, wcs = load(f"{prefix}-{s}.fits")
        check(wcs.naxis == 2 and hdr["CTYPE1"] == "RA---SIN" and hdr["RADESYS"] == "ICRS",
              f"{s}: opens without a warning, RA---SIN / ICRS")


def main():
    what = sys.argv[1]
    if what == "sources":
        sources(sys.argv[2], sys.argv[3], len(sys.argv) > 4 and sys.argv[4] == "--model-flux")
    elif what == "noise":
        noise(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif what == "same":
        same(sys.argv[2], sys.argv[3])
    elif what == "opens":
        opens(sys.argv[2])
    else:
        sys.exit(f"unknown check {what}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
