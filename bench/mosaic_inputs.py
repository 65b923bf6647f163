"""Synthetic DSA-110 drift-scan images for bench/mosaic.sh.

    mosaic_inputs.py --out DIR [--images N] [--small] [--sources K] [--seed S]
                     [--noise-jy J] [--ra0 DEG]

Writes DIR/img-00.fits ... (restored images, NOT corrected for the primary
beam), DIR/truth.json and DIR/truth.csv (the sky: ra, dec, flux), and prints
one JSON object describing what it wrote.

Geometry (the full size, the default):
  2048 x 2048 px of 6 arcsec (--small: 512 px of 24 arcsec, the same sky
  footprint), SIN projection centred on the pointing, dec 55 deg; pointing p
  at RA = RA0 + p x 309 s x 15.041 arcsec/s (1.2910 deg of sidereal drift
  between consecutive 309 s observations), DATE-OBS 309 s apart; 1.405 GHz,
  187.5 MHz bandwidth; restoring beam circular, FWHM 40 arcsec (--small: 120).
Sky:
  K point sources (default 200, --small 100: the 10-beam spacing leaves room
  for about that many at the small mode's 120 arcsec beam), fluxes uniform in
  log between 0.05 and 2 Jy, uniform on the sphere over the union of the
  images' footprints, every pair more than 10 beam FWHM apart; fixed seed.
Image p:
  I_p = sum_s S_s A_p(s) g(x - x_s, y - y_s) + n
  with A_p the Airy power pattern (2 J1(u)/u)^2, u = pi D sin(theta) f / c,
  D = 4.65 m, theta the angular distance of the source from the image's CRVAL,
  f = CRVAL3; g the restoring beam (peak 1) centred on the source's exact,
  non-integer pixel position from the image's SIN WCS, rendered only in a
  stamp of +-3 FWHM around it; n white Gaussian noise of --noise-jy (default
  1 mJy/beam) per pixel, NOT convolved with the beam (independent pixels).
So a correct primary-beam-weighted mosaic reads S_s at the peak of source s.
"""
import argparse
import csv
import datetime as dt
import json
import math
import os
import sys
import time
import warnings

import numpy as np

C_LIGHT = 299792458.0
DISH_M = 4.65
FREQ_HZ = 1.405e9
BANDWIDTH_HZ = 1.875e8
DEC_DEG = 55.0
CADENCE_S = 309.0
SIDEREAL_ARCSEC_PER_S = 15.041
START = "2026-11-22T10:00:00"


def airy_power(sin_theta, freq_hz, dish_m=DISH_M):
    """(2 J1(u)/u)^2 with u = pi D sin(theta) f / c; 1 at the centre."""
    from scipy.special import j1

    u = np.pi * dish_m * np.asarray(sin_theta, dtype=np.float64) * freq_hz / C_LIGHT
    out = np.ones_like(u)
    nz = np.abs(u) > 1e-12
    out[nz] = (2.0 * j1(u[nz]) / u[nz]) ** 2
    return out


def unit_vectors(ra_deg, dec_deg):
    ra = np.radians(ra_deg)
    dec = np.radians(dec_deg)
    c = np.cos(dec)
    return np.stack([c * np.cos(ra), c * np.sin(ra), np.sin(dec)], axis=-1)


def sin_separation(ra1, dec1, ra2, dec2):
    """sin of the angular distance (assumed < 90 deg) between two directions."""
    a = unit_vectors(ra1, dec1)
    b = unit_vectors(ra2, dec2)
    cross = np.cross(a, b)
    return np.linalg.norm(cross, axis=-1)


def image_header(size, cell_arcsec, ra_deg, dec_deg, date_obs, beam_arcsec):
    from astropy.io import fits

    # 15 significant digits, so that astropy writes -CDELT1 and CDELT2 with the
    # same digits (its 20-character values would cut the negative one short).
    cdelt = float("%.15g" % (cell_arcsec / 3600.0))
    h = fits.Header()
    h["SIMPLE"] = True
    h["BITPIX"] = -32
    h["NAXIS"] = 4
    h["NAXIS1"] = size
    h["NAXIS2"] = size
    h["NAXIS3"] = 1
    h["NAXIS4"] = 1
    h["BUNIT"] = "JY/BEAM"
    h["BMAJ"] = beam_arcsec / 3600.0
    h["BMIN"] = beam_arcsec / 3600.0
    h["BPA"] = 0.0
    h["CTYPE1"] = "RA---SIN"
    h["CRPIX1"] = size / 2 + 1.0
    h["CRVAL1"] = ra_deg
    h["CDELT1"] = -cdelt
    h["CUNIT1"] = "deg"
    h["CTYPE2"] = "DEC--SIN"
    h["CRPIX2"] = size / 2 + 1.0
    h["CRVAL2"] = dec_deg
    h["CDELT2"] = cdelt
    h["CUNIT2"] = "deg"
    h["CTYPE3"] = "FREQ"
    h["CRPIX3"] = 1.0
    h["CRVAL3"] = FREQ_HZ
    h["CDELT3"] = BANDWIDTH_HZ
    h["CUNIT3"] = "Hz"
    h["CTYPE4"] = "STOKES"
    h["CRPIX4"] = 1.0
    h["CRVAL4"] = 1.0
    h["CDELT4"] = 1.0
    h["CUNIT4"] = ""
    h["RADESYS"] = "ICRS"
    h["DATE-OBS"] = date_obs
    h["TELESCOP"] = "DSA-110"
    h["OBJECT"] = "bench-mosaic"
    h["ORIGIN"] = "contimg bench/mosaic_inputs.py"
    return h


def place_sources(rng, n, wcss, size, ra_lo, ra_hi, dec_lo, dec_hi, min_sep_deg,
                  max_tries=200000):
    """Uniform on the sphere in the RA/Dec box, kept if inside some image and
    farther than min_sep_deg from every source kept so far."""
    kept = []
    vecs = np.zeros((0, 3))
    cos_min = math.cos(math.radians(min_sep_deg))
    s_lo, s_hi = math.sin(math.radians(dec_lo)), math.sin(math.radians(dec_hi))
    tries = 0
    batch = 256
    while len(kept) < n and tries < max_tries:
        ra = rng.uniform(ra_lo, ra_hi, batch)
        dec = np.degrees(np.arcsin(rng.uniform(s_lo, s_hi, batch)))
        inside = np.zeros(batch, dtype=bool)
        for w in wcss:
            x, y = w.wcs_world2pix(ra, dec, 0)
            inside |= (x >= 0) & (x <= size - 1) & (y >= 0) & (y <= size - 1)
        for k in range(batch):
            tries += 1
            if not inside[k]:
                continue
            v = unit_vectors(ra[k], dec[k])
            if len(kept) and np.max(vecs @ v) > cos_min:
                continue
            kept.append((float(ra[k]), float(dec[k])))
            vecs = np.vstack([vecs, v[None, :]])
            if len(kept) == n:
                break
    return kept


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--images", type=int, default=10)
    p.add_argument("--small", action="store_true")
    p.add_argument("--sources", type=int, default=None)
    p.add_argument("--seed", type=int, default=20261122)
    p.add_argument("--noise-jy", type=float, default=1e-3)
    p.add_argument("--ra0", type=float, default=180.0,
                   help="RA of the first pointing, deg (default 180)")
    a = p.parse_args(argv)
    warnings.simplefilter("ignore")
    from astropy.io import fits
    from astropy.wcs import WCS

    t_start = time.time()
    if a.small:
        size, cell, beam = 512, 24.0, 120.0
        nsrc = 100 if a.sources is None else a.sources
    else:
        size, cell, beam = 2048, 6.0, 40.0
        nsrc = 200 if a.sources is None else a.sources
    if a.images < 1:
        p.error("--images must be >= 1")
    os.makedirs(a.out, exist_ok=True)
    step_deg = CADENCE_S * SIDEREAL_ARCSEC_PER_S / 3600.0
    t0 = dt.datetime.fromisoformat(START)
    pointings = []
    headers = []
    wcss = []
    for i in range(a.images):
        ra = (a.ra0 + i * step_deg) % 360.0
        date = (t0 + dt.timedelta(seconds=i * CADENCE_S)).strftime("%Y-%m-%dT%H:%M:%S.000")
        h = image_header(size, cell, ra, DEC_DEG, date, beam)
        headers.append(h)
        wcss.append(WCS(h).celestial)
        pointings.append((ra, DEC_DEG, date))

    # The union footprint's RA/Dec box (RA unwrapped around the first pointing).
    half = size * cell / 3600.0 / 2.0
    ras = np.array([pt[0] for pt in pointings])
    ras = a.ra0 + ((ras - a.ra0 + 180.0) % 360.0 - 180.0)
    dec_lo, dec_hi = DEC_DEG - 1.05 * half, DEC_DEG + 1.05 * half
    ra_pad = 1.1 * half / math.cos(math.radians(dec_hi))
    rng = np.random.default_rng(a.seed)
    pos = place_sources(rng, nsrc, wcss, size, ras.min() - ra_pad, ras.max() + ra_pad,
                        dec_lo, dec_hi, 10.0 * beam / 3600.0)
    flux = np.exp(rng.uniform(math.log(0.05), math.log(2.0), len(pos)))
    src_ra = np.array([q[0] % 360.0 for q in pos])
    src_dec = np.array([q[1] for q in pos])

    fwhm_px = beam / cell
    k = 4.0 * math.log(2.0) / fwhm_px**2  # g = exp(-k r^2)
    r = int(math.ceil(3.0 * fwhm_px))
    files = []
    for i, (h, w) in enumerate(zip(headers, wcss)):
        img = rng.normal(0.0, a.noise_jy, (size, size))
        x, y = w.wcs_world2pix(src_ra, src_dec, 0)
        ap = airy_power(sin_separation(src_ra, src_dec, h["CRVAL1"], h["CRVAL2"]), FREQ_HZ)
        for s in range(len(src_ra)):
            xs, ys = x[s], y[s]
            if not (-r <= xs <= size - 1 + r and -r <= ys <= size - 1 + r):
                continue
            x0, x1 = max(0, int(math.floor(xs)) - r), min(size, int(math.floor(xs)) + r + 2)
            y0, y1 = max(0, int(math.floor(ys)) - r), min(size, int(math.floor(ys)) + r + 2)
            if x0 >= x1 or y0 >= y1:
                continue
            dx = np.arange(x0, x1) - xs
            dy = np.arange(y0, y1) - ys
            # circular beam: separable
            stamp = np.outer(np.exp(-k * dy * dy), np.exp(-k * dx * dx))
            img[y0:y1, x0:x1] += flux[s] * ap[s] * stamp
        path = os.path.join(a.out, "img-%02d.fits" % i)
        tmp = path + ".tmp"
        fits.PrimaryHDU(img.astype(np.float32)[None, None, :, :], header=h).writeto(
            tmp, overwrite=True, output_verify="silentfix")
        os.replace(tmp, path)
        files.append(path)

    truth = {
        "images": files,
        "size": size,
        "cell_arcsec": cell,
        "beam_arcsec": beam,
        "freq_hz": FREQ_HZ,
        "bandwidth_hz": BANDWIDTH_HZ,
        "dish_m": DISH_M,
        "noise_jy": a.noise_jy,
        "noise": "white Gaussian per pixel, not convolved with the beam",
        "seed": a.seed,
        "pointings": [{"ra": q[0], "dec": q[1], "date_obs": q[2]} for q in pointings],
        "sources": [{"ra": float(r_), "dec": float(d_), "flux": float(f_)}
                    for r_, d_, f_ in zip(src_ra, src_dec, flux)],
    }
    with open(os.path.join(a.out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
    with open(os.path.join(a.out, "truth.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["ra_deg", "dec_deg", "flux_jy"])
        for r_, d_, f_ in zip(src_ra, src_dec, flux):
            wr.writerow(["%.8f" % r_, "%.8f" % d_, "%.6f" % f_])
    json.dump({"images": len(files), "size": size, "cell_arcsec": cell,
               "beam_arcsec": beam, "sources": len(src_ra), "sources_asked": nsrc,
               "ra_step_deg": step_deg, "dir": a.out,
               "seconds": round(time.time() - t_start, 2)}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
