"""Peer side of bench/imaging.sh: ducc0's wgridder and WSClean on the data contimg images.

Subcommands (each prints one JSON object on stdout):

  sources  --uvh5 F --dec DEG --field-deg D --out FILE
      The ICRS position of the pointing (apparent hour angle 0 at DEC) at the
      middle of the observation whose times F holds, and a sources file for
      `contimg simulate --sources` with a handful of point sources in the field.
  convention
      Finds ducc0's orientation and sign relative to contimg's on a tiny case.
  ducc     --rows F --nx N --ny N --cell ARCSEC --epsilon E [--ref DIRTY.fits]
      Images the rows contimg exported (--export-vis) with ducc0, 1 thread.
  ms       --uvh5 F --ra DEG --dec DEG --out MS
      A Measurement Set of F phased to (RA, Dec) ICRS, written by pyuvdata.
  compare  --a FITS --b FITS [--sources FILE]
      Peak, rms (1.4826 MAD) of both images and of their difference; the
      values at each catalogue position.
"""
import argparse
import json
import sys
import time
import warnings

import numpy as np

C_LIGHT = 299792458.0
ARCSEC = np.pi / 180 / 3600


def quiet_astropy():
    warnings.simplefilter("ignore")
    from astropy.utils import iers

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None


def out(obj):
    json.dump(obj, sys.stdout)
    sys.stdout.write("\n")


# --------------------------------------------------------------------------- sources
def cmd_sources(a):
    quiet_astropy()
    import astropy.units as u
    from astropy.coordinates import TETE, EarthLocation, SkyCoord
    from astropy.time import Time
    from pyuvdata import UVData

    uv = UVData.from_file(a.uvh5, file_type="uvh5", run_check=False, read_data=False)
    times = np.unique(uv.time_array)
    t = Time(0.5 * (times[0] + times[-1]), format="jd", scale="utc")
    loc = EarthLocation.from_geocentric(*uv.telescope._location.xyz(), unit=u.m)
    lst = t.sidereal_time("apparent", longitude=loc.lon)
    # Hour angle 0 at the apparent (true equator and equinox of date) declination.
    app = SkyCoord(ra=lst, dec=a.dec * u.deg, frame=TETE(obstime=t, location=loc))
    icrs = app.transform_to("icrs")
    ra0, dec0 = icrs.ra.deg, icrs.dec.deg
    h = a.field_deg / 2
    # (east offset, north offset) as fractions of the half-field, flux in Jy.
    layout = [(0.0, 0.0, 5.0), (0.35, 0.2, 2.0), (-0.5, 0.4, 1.5),
              (0.6, -0.55, 1.0), (-0.2, -0.7, 0.8), (0.75, 0.6, 0.5)]
    with open(a.out, "w") as f:
        f.write("# RA_DEG DEC_DEG FLUX_JY, made by bench/imaging_peers.py\n")
        for dx, dy, s in layout:
            dec = dec0 + dy * h
            ra = (ra0 + dx * h / np.cos(np.radians(dec))) % 360
            f.write(f"{ra:.6f} {dec:.6f} {s}\n")
    out({"centre_ra_deg": ra0, "centre_dec_deg": dec0, "mid_jd": t.jd, "n_sources": len(layout)})


# ----------------------------------------------------------------------- ducc0 side
def ducc_image(uvw, vis, wgt, nx, ny, cell_rad, eps, nthreads=1):
    """ducc0's dirty image as a [ny][nx] array in contimg's orientation, not yet
    divided by the sum of weights.

    Conventions (found by cmd_convention on a point source off the centre, and
    re-checked on every run; ducc0 0.42): vis2dirty returns dirty[x][y], first
    index along l (u), second along m (v), pixel npix/2 at the centre; it
    computes sum_k V_k exp(+2 pi i (u l + v m - w (n - 1))). contimg's adjoint
    is sum_k V_k exp(-2 pi i (u l + v m + w (n - 1))): the u, v sign is
    opposite and the w sign the same. So we (1) pass flip_u and flip_v but not
    flip_w (flipping w too, or conjugating the visibilities, leaves a w-term
    error; flipping nothing mirrors the image through the centre); (2) transpose
    to [y][x] (rows along m); (3) pass divide_by_n=False, as contimg's dirty
    image is not divided by n. freq = [c] makes the rows' uvw (wavelengths) count
    as metres at 1 wavelength per metre.
    """
    import ducc0.wgridder.experimental as wg

    d = wg.vis2dirty(uvw=uvw, freq=np.array([C_LIGHT]), vis=vis, wgt=wgt,
                     npix_x=nx, npix_y=ny, pixsize_x=cell_rad, pixsize_y=cell_rad,
                     epsilon=eps, do_wgridding=True, nthreads=nthreads,
                     flip_u=True, flip_v=True, flip_w=False, divide_by_n=False)
    return d.T


def cmd_convention(a):
    """A 1 Jy point source at (l0, m0) off the centre, made with contimg's
    V = exp(+2 pi i (u l0 + v m0 + w (n0 - 1))), imaged with ducc0 in each
    orientation; reports where the peak lands and the agreement with the
    direct adjoint (contimg's definition) with and without the flips."""
    import ducc0.wgridder.experimental as wg

    rng = np.random.default_rng(3)
    nvis, n, cell = 400, 64, 60 * ARCSEC
    uvw = rng.uniform(-1, 1, (nvis, 3)) * np.array([600.0, 600.0, 3000.0])
    ix0, iy0 = n // 2 + 9, n // 2 - 5  # east of and south of the centre
    l0, m0 = (ix0 - n // 2) * cell, (iy0 - n // 2) * cell
    n0 = np.sqrt(1 - l0 * l0 - m0 * m0)
    vis = np.exp(2j * np.pi * (uvw[:, 0] * l0 + uvw[:, 1] * m0 + uvw[:, 2] * (n0 - 1)))
    # Direct adjoint on the pixel grid, [iy][ix].
    ls = (np.arange(n) - n // 2) * cell
    L, M = np.meshgrid(ls, ls)  # L[iy, ix] = l of ix
    N = np.sqrt(1 - L * L - M * M)
    ph = (uvw[:, 0, None, None] * L + uvw[:, 1, None, None] * M
          + uvw[:, 2, None, None] * (N - 1))
    ref = np.real(np.sum(vis[:, None, None] * np.exp(-2j * np.pi * ph), axis=0)) / nvis
    res = {"true_peak_ix_iy": [ix0, iy0]}
    raw = wg.vis2dirty(uvw=uvw, freq=np.array([C_LIGHT]), vis=vis[:, None], npix_x=n,
                       npix_y=n, pixsize_x=cell, pixsize_y=cell, epsilon=1e-10,
                       do_wgridding=True, divide_by_n=False) / nvis
    i, j = np.unravel_index(np.argmax(raw), raw.shape)
    res["ducc_raw_peak_index"] = [int(i), int(j)]
    res["ducc_raw_transposed_max_err"] = float(np.max(np.abs(raw.T - ref)) / np.max(np.abs(ref)))
    for name, fu, fv, fw in (("flip_uvw", True, True, True), ("flip_w", False, False, True)):
        d = wg.vis2dirty(uvw=uvw, freq=np.array([C_LIGHT]), vis=vis[:, None], npix_x=n,
                         npix_y=n, pixsize_x=cell, pixsize_y=cell, epsilon=1e-10,
                         do_wgridding=True, divide_by_n=False, flip_u=fu, flip_v=fv,
                         flip_w=fw) / nvis
        res[f"ducc_{name}_transposed_max_err"] = float(np.max(np.abs(d.T - ref)) / np.max(np.abs(ref)))
    used = ducc_image(uvw, vis[:, None], None, n, n, cell, 1e-10) / nvis
    res["ducc_as_used_max_err"] = float(np.max(np.abs(used - ref)) / np.max(np.abs(ref)))
    res["ok"] = res["ducc_as_used_max_err"] < 1e-8
    out(res)
    if not res["ok"]:
        sys.exit(1)


def read_fits_image(path):
    from astropy.io import fits

    with fits.open(path) as h:
        return np.array(h[0].data, dtype=np.float64).reshape(h[0].data.shape[-2:]), h[0].header


def cmd_ducc(a):
    raw = np.memmap(a.rows, dtype="<f8", mode="r")
    if raw.size % 6:
        sys.exit(f"{a.rows}: {raw.size} doubles, not a multiple of 6")
    rows = raw.reshape(-1, 6)
    nvis = rows.shape[0]
    t0 = time.perf_counter()
    uvw = np.ascontiguousarray(rows[:, 0:3])
    vis = np.empty((nvis, 1), np.complex128)
    vis[:, 0].real = rows[:, 3]
    vis[:, 0].imag = rows[:, 4]
    wgt = np.ascontiguousarray(rows[:, 5:6])
    wsum = float(np.sum(wgt))
    load_s = time.perf_counter() - t0
    del raw, rows
    cell = a.cell * ARCSEC
    res = {"n_vis": nvis, "epsilon": a.epsilon, "load_s": load_s, "nthreads": a.threads}
    t0 = time.perf_counter()
    img = ducc_image(uvw, vis, wgt, a.nx, a.ny, cell, a.epsilon, a.threads)
    res["grid_s"] = time.perf_counter() - t0  # gridding + FFT + correction: the whole call
    img /= wsum
    res["vis_per_s_per_core"] = nvis / res["grid_s"] / a.threads
    res["peak"] = float(np.max(np.abs(img)))
    if a.save:
        np.save(a.save, img.astype(np.float32))
    if a.ref:
        ref, hdr = read_fits_image(a.ref)
        if ref.shape != img.shape:
            res["ref_error"] = f"shape {ref.shape} vs {img.shape}"
        else:
            # contimg's FITS may hold [iy][ix] as gridder.h has it, or with x
            # mirrored about the centre pixel (x = nx - ix, east on the left, as
            # WSClean writes, CRPIX1 = nx/2 + 1), or simply reversed (x = nx - 1 - ix,
            # CRPIX1 = nx/2); take whichever agrees and say so. Column 0 has no
            # mirror partner and is left out of all three.
            mir = np.roll(ref[:, ::-1], 1, axis=1)
            pk = float(np.max(np.abs(img)))
            best = None
            for name, r in (("as gridder.h", ref), ("x mirrored about nx/2", mir),
                            ("x reversed (x = nx-1-ix)", ref[:, ::-1])):
                d = (r - img)[:, 1:]
                err = float(np.max(np.abs(d)) / pk)
                if best is None or err < best[1]:
                    best = (name, err, d)
            name, err, d = best
            res["ref_orientation"] = name
            res["ref_peak"] = float(np.max(np.abs(ref)))
            res["diff_max_over_peak"] = err
            res["diff_rms"] = float(np.sqrt(np.mean(d * d)))
            res["diff_rms_over_peak"] = res["diff_rms"] / pk
    out(res)


# -------------------------------------------------------------------- WSClean's MS
def cmd_ms(a):
    quiet_astropy()
    import shutil

    from pyuvdata import UVData

    t0 = time.perf_counter()
    # Several files (the 16 subbands of one observation) are combined along frequency,
    # as the seed pipeline's converter does.
    files = a.uvh5 if len(a.uvh5) > 1 else a.uvh5[0]
    uv = UVData.from_file(files, file_type="uvh5", run_check=False)
    if uv.Nspws > 1 or (uv.Nfreqs > 1 and uv.freq_array.ravel()[1] < uv.freq_array.ravel()[0]):
        uv.reorder_freqs(channel_order="freq")
    notes = []
    # DSA-110 files are a drift scan fringe-stopped at the meridian: extra_keywords
    # ha_phase_center = 0, phase_center_dec, epoch "HADEC". pyuvdata reads them as
    # "unprojected" (phased to zenith), which they are not: phasing from there would
    # apply the wrong correction. Declare instead what they are, a fixed point in
    # azimuth and elevation (the meridian at that declination), then phase to the
    # ICRS centre; pyuvdata recomputes uvw from the antenna positions.
    kw = uv.extra_keywords
    if str(kw.get("phase_center_epoch", "")).upper() == "HADEC":
        lat = uv.telescope.location.lat.rad
        dec = float(kw["phase_center_dec"])
        el = np.pi / 2 - abs(dec - lat)
        az = 0.0 if dec >= lat else np.pi
        uv.phase_center_catalog = {}
        cid = uv._add_phase_center("meridian", cat_type="driftscan", cat_lon=az,
                                   cat_lat=el, cat_frame="altaz")
        uv.phase_center_id_array[:] = cid
        uv._set_app_coords_helper()
        notes.append(f"HADEC drift declared as driftscan az {np.degrees(az):.1f} "
                     f"el {np.degrees(el):.4f} deg before phasing")
    uv.phase(ra=np.radians(a.ra), dec=np.radians(a.dec), epoch="J2000",
             phase_frame="icrs", cat_name="centre")
    # The simulator names the telescope OVRO_MMA; autocorrelations stay (WSClean
    # skips them).
    shutil.rmtree(a.out, ignore_errors=True)
    uv.write_ms(a.out, clobber=True, run_check=False)
    out({"ms": a.out, "seconds": time.perf_counter() - t0, "nblts": uv.Nblts,
         "nfreqs": uv.Nfreqs, "npols": uv.Npols, "notes": notes})


# ------------------------------------------------------------------- image compare
def mad_rms(x):
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def cmd_compare(a):
    quiet_astropy()
    from astropy.wcs import WCS

    A, ha = read_fits_image(a.a)
    B, hb = read_fits_image(a.b)
    res = {}
    for k in ("CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "BMAJ", "BMIN"):
        res[k] = [ha.get(k), hb.get(k)]
    # Same sky grid: equal CDELT and CRVAL, CRPIX differing by whole pixels (the
    # images are then compared on their overlap after shifting B by that offset).
    dx = hb["CRPIX1"] - ha["CRPIX1"]
    dy = hb["CRPIX2"] - ha["CRPIX2"]
    same = (A.shape == B.shape and
            all(abs(ha[k] - hb[k]) < 1e-6 * max(1.0, abs(ha[k])) for k in ("CDELT1", "CDELT2")) and
            abs(dx - round(dx)) < 1e-6 and abs(dy - round(dy)) < 1e-6 and
            abs(ha["CRVAL1"] - hb["CRVAL1"]) * 3600 * np.cos(np.radians(ha["CRVAL2"])) < 0.05 * abs(ha["CDELT1"]) * 3600 and
            abs(ha["CRVAL2"] - hb["CRVAL2"]) * 3600 < 0.05 * abs(ha["CDELT2"]) * 3600)
    # A slant SIN (contimg's PV2_1, PV2_2; imager.h) against a plain one: the
    # same pixel sizes and centre, but directions that part by up to a few
    # pixels at the field's edge. B is then resampled onto A's pixels through
    # both WCSs (bicubic; at 4-5 pixels across the beam its error is about 1e-3
    # of a source's peak) and the difference taken there.
    pv = [[ha.get("PV2_1", 0.0), ha.get("PV2_2", 0.0)], [hb.get("PV2_1", 0.0), hb.get("PV2_2", 0.0)]]
    res["pv2"] = pv
    resample = same and pv[0] != pv[1]
    same = same and not resample
    res["crpix_shift_b_minus_a"] = [dx, dy]
    res["same_grid"] = bool(same)
    res["resampled_b"] = bool(resample)
    res["centre_offset_arcsec"] = [
        float((ha["CRVAL1"] - hb["CRVAL1"]) * 3600 * np.cos(np.radians(ha["CRVAL2"]))),
        float((ha["CRVAL2"] - hb["CRVAL2"]) * 3600)]
    for tag, img in (("a", A), ("b", B)):
        res[f"{tag}_peak"] = float(np.nanmax(img))
        res[f"{tag}_rms"] = mad_rms(img)
    if same:
        dx, dy = int(round(dx)), int(round(dy))
        ny, nx = A.shape
        # pixel (x, y) of A is pixel (x + dx, y + dy) of B
        xa = slice(max(0, -dx), min(nx, nx - dx))
        ya = slice(max(0, -dy), min(ny, ny - dy))
        xb = slice(xa.start + dx, xa.stop + dx)
        yb = slice(ya.start + dy, ya.stop + dy)
        d = A[ya, xa] - B[yb, xb]
        res["diff_rms"] = float(np.sqrt(np.nanmean(d * d)))
        res["diff_mad_rms"] = mad_rms(d)
        res["diff_max"] = float(np.nanmax(np.abs(d)))
    if resample:
        from scipy.ndimage import map_coordinates
        wa, wb = WCS(ha).celestial, WCS(hb).celestial
        ny, nx = A.shape
        Bs = np.full(A.shape, np.nan)
        for y0 in range(0, ny, 256):  # in bands: 23 Mpx of coordinates at once is GBs
            yy, xx = np.mgrid[y0:min(ny, y0 + 256), 0:nx]
            ra, dec = wa.all_pix2world(xx.ravel(), yy.ravel(), 0)
            bx, by = wb.all_world2pix(ra, dec, 0)
            Bs[y0:y0 + yy.shape[0]] = map_coordinates(np.nan_to_num(B), [by, bx], order=3,
                                                      mode="constant", cval=np.nan).reshape(yy.shape)
        d = A - Bs
        res["diff_rms"] = float(np.sqrt(np.nanmean(d * d)))
        res["diff_mad_rms"] = mad_rms(d)
        res["diff_max"] = float(np.nanmax(np.abs(d)))
    if a.sources:
        cat = np.loadtxt(a.sources, comments="#", ndmin=2)
        rows = []
        for tag, img, h in (("a", A, ha), ("b", B, hb)):
            w = WCS(h).celestial
            px, py = w.all_world2pix(cat[:, 0], cat[:, 1], 0)
            vals, offs = [], []
            for x, y in zip(px, py):
                ix, iy = int(round(x)), int(round(y))
                if 2 <= ix < img.shape[1] - 2 and 2 <= iy < img.shape[0] - 2:
                    box = img[iy - 2:iy + 3, ix - 2:ix + 3]
                    j, i = np.unravel_index(np.argmax(box), box.shape)
                    vals.append(float(box[j, i]))
                    offs.append([int(i) - 2, int(j) - 2])
                else:
                    vals.append(None)
                    offs.append(None)
            rows.append((vals, offs))
        res["sources"] = [{"ra": float(c[0]), "dec": float(c[1]), "flux": float(c[2]),
                           "a": rows[0][0][i], "a_offset_px": rows[0][1][i],
                           "b": rows[1][0][i], "b_offset_px": rows[1][1][i]}
                          for i, c in enumerate(cat)]
    out(res)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sources")
    s.add_argument("--uvh5", required=True)
    s.add_argument("--dec", type=float, required=True)
    s.add_argument("--field-deg", type=float, required=True)
    s.add_argument("--out", required=True)
    sub.add_parser("convention")
    s = sub.add_parser("ducc")
    s.add_argument("--rows", required=True)
    s.add_argument("--nx", type=int, required=True)
    s.add_argument("--ny", type=int, required=True)
    s.add_argument("--cell", type=float, required=True, help="arcsec")
    s.add_argument("--epsilon", type=float, required=True)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--ref")
    s.add_argument("--save")
    s = sub.add_parser("ms")
    s.add_argument("--uvh5", required=True, nargs="+")
    s.add_argument("--ra", type=float, required=True)
    s.add_argument("--dec", type=float, required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("compare")
    s.add_argument("--a", required=True)
    s.add_argument("--b", required=True)
    s.add_argument("--sources")
    a = p.parse_args()
    {"sources": cmd_sources, "convention": cmd_convention, "ducc": cmd_ducc,
     "ms": cmd_ms, "compare": cmd_compare}[a.cmd](a)


if __name__ == "__main__":
    main()
