#!/usr/bin/python3
"""check_fitsimage.py DIR -- astropy reads the images test_fitsimage wrote.

DIR holds sin.fits, tan.fits and expect.txt (what test_fitsimage meant to
write). Every warning is an error: astropy.io.fits and astropy.wcs must accept
the files as they are, with nothing to "fix" (FITSFixedWarning). Checked: the
header keywords, DATE-OBS as an astropy Time and MJD-OBS agreeing with it, the
WCS (the reference pixel maps to the reference position, +10 pixels in x moves
east-to-west: RA decreases, by 10 pixels' worth of angle), and pixel values.
Prints "N passed, M failed" like the C tests; exits non-zero on any failure.
"""
import math
import os
import sys
import warnings

warnings.simplefilter("error")

import numpy as np  # noqa: E402
from astropy import units as u  # noqa: E402
from astropy.coordinates import SkyCoord  # noqa: E402
from astropy.io import fits  # noqa: E402
from astropy.time import Time  # noqa: E402
from astropy.wcs import WCS  # noqa: E402

passed = 0
failed = 0


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL %s" % msg, file=sys.stderr)


def read_expect(path):
    images, cur = [], None
    with open(path) as f:
        for line in f:
            word, _, rest = line.rstrip("\n").partition(" ")
            if word == "image":
                cur = {"name": rest, "extra": {}, "pixels": []}
                images.append(cur)
            elif word in ("proj", "bunit", "date"):
                cur[word] = rest
            elif word in ("ra", "dec", "cdelt"):
                cur[word] = float(rest)
            elif word in ("crpix", "freq", "beam"):
                cur[word] = [float(v) for v in rest.split()]
            elif word == "extra":
                k, v = rest.split()
                cur["extra"][k] = float(v)
            elif word == "pixel":
                x, y, v = rest.split()
                cur["pixels"].append((int(x), int(y), float(v)))
    return images


def check_image(directory, e):
    name = e["name"]
    with fits.open(os.path.join(directory, name)) as hdul:
        hdul.verify("exception")
        check(len(hdul) == 1, "%s: one HDU" % name)
        h = hdul[0].header
        data = hdul[0].data
        proj = e["proj"]

        check(h["BITPIX"] == -32, "%s: BITPIX %r" % (name, h["BITPIX"]))
        check(h["NAXIS"] == 4, "%s: NAXIS" % name)
        check(data.shape == (1, 1, 48, 64), "%s: shape %r" % (name, data.shape))
        check(data.dtype.kind == "f" and data.dtype.itemsize == 4, "%s: float32" % name)
        want = {"CTYPE1": "RA---" + proj, "CTYPE2": "DEC--" + proj, "CTYPE3": "FREQ",
                "CTYPE4": "STOKES", "CUNIT1": "deg", "CUNIT2": "deg", "CUNIT3": "Hz",
                "RADESYS": "ICRS", "SPECSYS": "TOPOCENT", "TELESCOP": "DSA-110",
                "INSTRUME": "DSA", "BTYPE": "Intensity", "BUNIT": e["bunit"],
                "DATE-OBS": e["date"]}
        for k, v in want.items():
            check(h.get(k) == v, "%s: %s = %r, want %r" % (name, k, h.get(k), v))
        check(h["CRVAL1"] == e["ra"] and h["CRVAL2"] == e["dec"], "%s: CRVAL" % name)
        check(h["CDELT1"] == -e["cdelt"] and h["CDELT2"] == e["cdelt"], "%s: CDELT" % name)
        check([h["CRPIX1"], h["CRPIX2"]] == e["crpix"], "%s: CRPIX" % name)
        check(h["CRVAL3"] == e["freq"][0] and h["CDELT3"] == e["freq"][1], "%s: FREQ axis" % name)
        check(h["RESTFRQ"] == e["freq"][0], "%s: RESTFRQ" % name)
        check(h["CRVAL4"] == 1 and h["NAXIS3"] == 1 and h["NAXIS4"] == 1, "%s: Stokes I" % name)
        bmaj, bmin, bpa = e["beam"]
        if bmaj > 0:
            check((h["BMAJ"], h["BMIN"], h["BPA"]) == (bmaj, bmin, bpa), "%s: beam" % name)
        else:
            check("BMAJ" not in h and "BMIN" not in h and "BPA" not in h, "%s: no beam" % name)
        # WCSLIB would "fix" (complete) OBSGEO-*, TIMESYS 'UTC' upsets astropy 5.2.
        for k in ("OBSGEO-X", "OBSGEO-L", "TIMESYS", "EQUINOX"):
            check(k not in h, "%s: no %s" % (name, k))
        for k, v in e["extra"].items():
            check(h.get(k) == v, "%s: extra %s = %r, want %r" % (name, k, h.get(k), v))

        t = Time(h["DATE-OBS"], format="isot", scale="utc")
        check(abs(t.mjd - h["MJD-OBS"]) < 1e-9, "%s: MJD-OBS %r vs DATE-OBS %r"
              % (name, h["MJD-OBS"], t.mjd))
        check(t.isot.startswith(e["date"][:19]), "%s: DATE-OBS as Time %s" % (name, t.isot))

        w = WCS(h)
        check(w.naxis == 4, "%s: WCS has 4 axes" % name)
        check(w.wcs.radesys == "ICRS", "%s: wcs radesys %r" % (name, w.wcs.radesys))
        cel = w.celestial
        x0, y0 = e["crpix"][0] - 1, e["crpix"][1] - 1  # 0-based reference pixel
        c0 = cel.pixel_to_world(x0, y0)
        check(isinstance(c0, SkyCoord) and c0.frame.name == "icrs", "%s: ICRS frame" % name)
        ref = SkyCoord(e["ra"] * u.deg, e["dec"] * u.deg, frame="icrs")
        check(c0.separation(ref).arcsec < 1e-6, "%s: reference pixel -> (%r, %r), want (%r, %r)"
              % (name, c0.ra.deg, c0.dec.deg, e["ra"], e["dec"]))
        # Full 4-D transformation, low level and high level.
        world = w.all_pix2world([[x0, y0, 0, 0]], 0)[0]
        check(abs(world[0] - e["ra"]) < 1e-9 and abs(world[1] - e["dec"]) < 1e-9,
              "%s: 4-D reference %r" % (name, world))
        check(abs(world[2] - e["freq"][0]) < 1e-3 and world[3] == 1, "%s: freq, Stokes %r"
              % (name, world[2:]))
        hl = w.pixel_to_world(x0, y0, 0, 0)
        spec = [o for o in hl if hasattr(o, "unit") and o.unit.physical_type == "frequency"]
        check(len(spec) == 1 and abs(spec[0].to_value(u.Hz) - e["freq"][0]) < 1e-3,
              "%s: spectral %r" % (name, hl))

        # +10 pixels in x: west, RA smaller; the separation is 10 pixels of angle.
        c1 = cel.pixel_to_world(x0 + 10, y0)
        dra = (c1.ra.deg - e["ra"] + 180) % 360 - 180
        check(dra < 0, "%s: +10 px in x moves RA by %r deg (must decrease)" % (name, dra))
        sep = c1.separation(c0).deg
        r = math.radians(10 * e["cdelt"])
        want_sep = math.degrees(math.asin(r) if proj == "SIN" else math.atan(r))
        check(abs(sep - want_sep) < 1e-9 and abs(sep / (10 * e["cdelt"]) - 1) < 1e-3,
              "%s: separation %r deg, want %r" % (name, sep, want_sep))
        check(c1.position_angle(c0).deg % 360 > 45 and c1.position_angle(c0).deg % 360 < 135,
              "%s: the reference is east of +10 px" % name)
        # +10 pixels in y: north.
        c2 = cel.pixel_to_world(x0, y0 + 10)
        check(c2.dec.deg > e["dec"], "%s: +10 px in y moves north" % name)
        # The inverse: the reference position maps back to the reference pixel.
        px, py = cel.world_to_pixel(ref)
        check(abs(px - x0) < 1e-6 and abs(py - y0) < 1e-6, "%s: world_to_pixel" % name)

        for x, y, v in e["pixels"]:
            got = data[0, 0, y, x]
            if math.isnan(v):
                check(np.isnan(got), "%s: pixel (%d, %d) NaN, got %r" % (name, x, y, got))
            else:
                check(got == np.float32(v), "%s: pixel (%d, %d) = %r, want %r"
                      % (name, x, y, got, v))


def main():
    directory = sys.argv[1]
    images = read_expect(os.path.join(directory, "expect.txt"))
    check(sorted(i["name"] for i in images) == ["sin.fits", "tan.fits"], "both images expected")
    for e in images:
        try:
            check_image(directory, e)
        except Exception as exc:  # a warning turned error, or a missing keyword
            check(False, "%s: %s: %s" % (e["name"], type(exc).__name__, exc))
    print("check_fitsimage: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
