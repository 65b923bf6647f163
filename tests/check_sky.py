"""Compares contimg's astronomy (written by test_sky) with astropy's.

astropy is an independent implementation of the same transformations, so
agreement here checks our use of ERFA (time scales, frames, signs) and our
geometry. Both sides assume UT1 = UTC and no polar motion (the test dates
lie beyond the IERS tables astropy ships with, and nothing may be fetched).
Exits non-zero, saying why, on any disagreement.
"""
import math
import sys
import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import HADec, EarthLocation, SkyCoord
from astropy.time import Time
from astropy.utils import iers

iers.conf.auto_download = False
iers.conf.iers_degraded_accuracy = "ignore"
warnings.simplefilter("ignore")


def _no_polar_motion(time):
    # The C side passes xp = yp = 0 to ERFA; outside its tables astropy would
    # still use the last polar motion it knows (~0.3 arcsec).
    zero = np.zeros(np.shape(time.jd1))
    return zero, zero


import astropy.coordinates.erfa_astrom as _astrom  # noqa: E402
import astropy.coordinates.builtin_frames.utils as _frame_utils  # noqa: E402
import astropy.coordinates.builtin_frames.intermediate_rotation_transforms as _irt  # noqa: E402

for _module in (_astrom, _frame_utils, _irt):
    if hasattr(_module, "get_polar_motion"):
        _module.get_polar_motion = _no_polar_motion

ARCSEC = math.pi / 180 / 3600
failures = []
checks = 0


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        failures.append(what)


site = None
with open(sys.argv[1]) as f:
    lines = [line.split() for line in f]

for row in lines:
    kind, vals = row[0], [float(x) for x in row[1:]]
    if kind == "SITE":
        lon, lat, h, x, y, z = vals
        site = EarthLocation.from_geodetic(lon * u.rad, lat * u.rad, h * u.m)
        ex, ey, ez = (q.to_value(u.m) for q in site.to_geocentric())
        d = math.dist((x, y, z), (ex, ey, ez))
        check(d < 1e-3, f"site ECEF differs by {d:.4f} m")
    elif kind == "DIR":
        ra, dec, jd, ha, dec_app = vals
        # UT1 = UTC, as the C side assumes.
        t = Time(jd, format="jd", scale="utc")
        t.delta_ut1_utc = 0.0
        frame = HADec(obstime=t, location=site, pressure=0 * u.hPa)
        c = SkyCoord(ra * u.rad, dec * u.rad, frame="icrs").transform_to(frame)
        dha = (c.ha.to_value(u.rad) - ha + math.pi) % (2 * math.pi) - math.pi
        dha *= math.cos(dec_app)
        ddec = c.dec.to_value(u.rad) - dec_app
        err = math.hypot(dha, ddec) / ARCSEC
        check(err < 0.001, f"source ({math.degrees(ra):.2f}, {math.degrees(dec):.2f}) at JD {jd}: "
                          f"position differs by {err:.4f} arcsec")
    elif kind == "UVW":
        a = np.array(vals[0:3])
        b = np.array(vals[3:6])
        dec0 = vals[6]
        ours = np.array(vals[7:10])
        # The phase centre at hour angle 0: a unit vector in the site's
        # meridian plane; u east, v north, w towards it.
        lam = site.lon.to_value(u.rad)
        w_hat = np.array([math.cos(dec0) * math.cos(lam), math.cos(dec0) * math.sin(lam),
                          math.sin(dec0)])
        u_hat = np.array([-math.sin(lam), math.cos(lam), 0.0])
        v_hat = np.cross(w_hat, u_hat)
        base = b - a
        theirs = np.array([base @ u_hat, base @ v_hat, base @ w_hat])
        d = np.abs(theirs - ours).max()
        check(d < 1e-5, f"uvw differs by {d:.2e} m (ours {ours}, projection {theirs})")

if site is None:
    failures.append("no SITE line")
for f in failures:
    print("FAIL", f)
print(f"{checks - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
