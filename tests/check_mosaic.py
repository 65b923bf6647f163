"""check_mosaic.py MOSAIC.fits IMAGE.fits... -- a mosaic of pipeline images against the
linear-mosaic formula evaluated here independently: astropy's WCS for every position,
scipy's cubic spline for the resampling, numpy's median for each image's MAD noise and
scipy's Bessel J1 for the Airy beam of a 4.65 m dish at the image's frequency.

Checked: the file opens without a warning as a TAN image; at the mosaic pixel nearest
each input's phase centre (where the simulated sources are) and at 200 random unblanked
pixels, M = sum(A I w) / sum(A^2 w) within 2 % of the local value plus 0.2 (at the
sources) or 0.5 (random pixels: noise is where two cubic kernels differ most) x the noise
map (spline against Keys' cubic kernel); the noise map equals 1 / sqrt(sum A^2 w) within
1 %; the blanking follows the weight's cutoff."""
import sys
import warnings

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from scipy.ndimage import map_coordinates
from scipy.special import j1

warnings.simplefilter("error")
prefix_file, paths = sys.argv[1], sys.argv[2:]
with fits.open(prefix_file) as h:
    m = h[0].data.squeeze().astype(float)
    hdr = h[0].header
    mw = WCS(hdr).celestial
noise = fits.getdata(prefix_file.replace(".fits", "-noise.fits")).squeeze().astype(float)
assert mw.wcs.ctype[0] == "RA---TAN" and mw.wcs.ctype[1] == "DEC--TAN", mw.wcs.ctype

inputs = []
for path in paths:
    with fits.open(path) as h, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the inputs are not under test here
        img = h[0].data.squeeze().astype(float)
        ih = h[0].header
        iw = WCS(ih).celestial
    finite = img[np.isfinite(img)]
    sigma = 1.482602218505602 * np.median(np.abs(finite - np.median(finite)))
    inputs.append((img, iw, ih["CRVAL1"], ih["CRVAL2"], ih["CRVAL3"], sigma))


def airy(sin_theta, freq):
    x = np.pi * 4.65 * sin_theta * freq / 299792458.0
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(x > 1e-8, (2 * j1(x) / np.where(x > 1e-8, x, 1)) ** 2, 1.0)
    return a


def expected(ix, iy):
    """sum A I w / sum A^2 w and sum A^2 w at mosaic pixels (ix, iy)."""
    ra, dec = mw.all_pix2world(ix, iy, 0)
    num = np.zeros(len(ix))
    den = np.zeros(len(ix))
    for img, w, ra0, dec0, freq, sigma in inputs:
        x, y = w.all_world2pix(ra, dec, 0)
        inside = (x >= 1) & (y >= 1) & (x < img.shape[1] - 2) & (y < img.shape[0] - 2)
        v = map_coordinates(np.nan_to_num(img), [y, x], order=3, mode="nearest")
        a0, d0 = np.radians([ra0, dec0])
        r, dd = np.radians(ra), np.radians(dec)
        cos_t = np.sin(dd) * np.sin(d0) + np.cos(dd) * np.cos(d0) * np.cos(r - a0)
        beam = airy(np.sqrt(np.clip(1 - cos_t**2, 0, 1)), freq)
        wt = 1 / sigma**2
        num += np.where(inside, beam * v * wt, 0)
        den += np.where(inside, beam**2 * wt, 0)
    return num / np.where(den > 0, den, np.nan), den


# The sources: at each input's phase centre.
src = np.array([mw.all_world2pix(ra0, dec0, 0) for _, _, ra0, dec0, _, _ in inputs])
ix, iy = np.rint(src[:, 0]).astype(int), np.rint(src[:, 1]).astype(int)
exp_src, _ = expected(ix, iy)
got = m[iy, ix]
assert np.all(np.abs(got - exp_src) < 0.02 * np.abs(exp_src) + 0.2 * noise[iy, ix]), (got, exp_src)

# Random unblanked pixels away from the edges.
rng = np.random.default_rng(1)
ok = np.argwhere(np.isfinite(m[3:-3, 3:-3])) + 3
pick = ok[rng.choice(len(ok), size=min(200, len(ok)), replace=False)]
ry, rx = pick[:, 0], pick[:, 1]
exp_r, den_r = expected(rx, ry)
diff = np.abs(m[ry, rx] - exp_r)
good = diff < 0.02 * np.abs(exp_r) + 0.5 * noise[ry, rx]
assert good.mean() > 0.95, (good.mean(), diff[~good][:5], exp_r[~good][:5])
assert np.all(np.abs(noise[ry, rx] * np.sqrt(den_r) - 1) < 0.01), "noise map"
# Blanked exactly where the weight is below cutoff^2 x max.
cut = hdr["CUTOFF"] ** 2 * hdr["MAXWT"]
wmap = fits.getdata(prefix_file.replace(".fits", "-weight.fits")).squeeze()
assert np.array_equal(np.isnan(m), wmap < cut * (1 - 1e-6)) or \
    np.mean(np.isnan(m) != (wmap < cut)) < 1e-4, "blanking"
for k, p in enumerate(paths):
    print("%s: mosaic %.4f Jy/beam at its centre, formula %.4f" % (p, got[k], exp_src[k]))
