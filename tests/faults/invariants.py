#!/usr/bin/env python3
"""invariants.py URL PRODUCTS_DIR NGROUPS -- what the pipeline's state must be after any
fault and a rerun that drains the queue (faults.sh, issue 17). Prints one line per
violation and exits 1 if there was any; prints a one-line summary and exits 0 otherwise.

The invariants, read from the database and the products directory themselves:
  tasks     every task completed, or failed (dead-lettered) with an error category;
            nothing pending, retrying or claimed
  chain     every group converted and imaged, and each completed task's product has a row
  rows      one row per product: no two rows for one group, path or mosaic window
  files     every row's files exist and are complete: the visibilities read back whole with
            the row's shape, every FITS file opens and holds its full data, an image's
            peak is the row's peak_jy
  leftovers no temporary file anywhere under the products directory, and no orphan: every
            file there belongs to a row (an image's companions, a mosaic's tiles)
"""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
from astropy.io import fits

url, products, ngroups = sys.argv[1], os.path.realpath(sys.argv[2]), int(sys.argv[3])
violations = []


def bad(what):
    violations.append(what)


def rows(sql):
    out = subprocess.run(["psql", url, "-XAtq", "-c", f"SELECT coalesce(json_agg(t), '[]') FROM ({sql}) t"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


# ---- tasks ---------------------------------------------------------------------------------
tasks = rows("SELECT task_id, task_name, status, attempt, error_category, error, params "
             "FROM absurd.tasks ORDER BY seq")
for t in tasks:
    if t["status"] == "completed":
        continue
    if t["status"] == "failed" and t["error_category"]:
        continue
    bad(f"task {t['task_name']} {t['task_id']} is {t['status']} (attempt {t['attempt']}, "
        f"category {t['error_category']}): {t['error']}")
done = {name: sum(1 for t in tasks if t["task_name"] == name and t["status"] == "completed")
        for name in ("convert-uvh5-to-ms", "imaging", "create-mosaic")}

# ---- rows ----------------------------------------------------------------------------------
vis = rows("SELECT group_id, path, nblts, nfreqs, npols FROM products.visibilities")
images = rows("SELECT group_id, image_path, pb_path, nx, ny, peak_jy FROM products.images")
mosaics = rows("SELECT mosaic_id, path, noise_path, weight_path, tiles, nx, ny FROM products.mosaics")

if done["convert-uvh5-to-ms"] != len(vis) or done["imaging"] != len(images) or \
        done["create-mosaic"] != len(mosaics):
    bad(f"completed tasks and rows disagree: {done} against {len(vis)} visibility, "
        f"{len(images)} image and {len(mosaics)} mosaic rows")
failed = [t for t in tasks if t["status"] == "failed"]
if not failed and (len(vis) != ngroups or len(images) != ngroups):
    bad(f"nothing failed, yet {len(vis)} visibility and {len(images)} image rows for {ngroups} groups")
for kind, rs, key in (("visibility", vis, "group_id"), ("image", images, "group_id"),
                      ("visibility", vis, "path"), ("image", images, "image_path"),
                      ("mosaic", mosaics, "path")):
    keys = [r[key] for r in rs]
    if len(keys) != len(set(keys)):
        bad(f"two {kind} rows share a {key}: {sorted(keys)}")

# ---- files ---------------------------------------------------------------------------------
owned = set()


def own(path):
    real = os.path.realpath(path)
    owned.add(real)
    if not real.startswith(products + "/"):
        bad(f"{path} lies outside the products directory")
    return real


def fits_whole(path, shape=None):
    """The file opens and holds all its data (a truncated file fails to read it)."""
    try:
        with fits.open(path, memmap=False) as h:
            data = h[0].data
            if data is None:
                bad(f"{path}: no data")
                return None
            if shape is not None and data.squeeze().shape != shape:
                bad(f"{path}: shape {data.squeeze().shape}, the row says {shape}")
            return np.asarray(data, dtype=np.float64).squeeze()
    except Exception as e:  # noqa: BLE001 -- any failure to read is the finding
        bad(f"{path}: does not open as FITS: {e}")
        return None


for r in vis:
    p = own(r["path"])
    try:
        with h5py.File(p, "r") as f:
            d = f["Data/visdata"]
            want = (r["nblts"], r["nfreqs"], r["npols"])
            got = (d.shape[0], d.shape[-2], d.shape[-1])
            if got != want:
                bad(f"{p}: visdata shape {d.shape}, the row says {want}")
            d[...]
            f["Data/flags"][...]
            f["Data/nsamples"][...]
    except Exception as e:  # noqa: BLE001
        bad(f"{p}: the visibilities do not read back: {e}")

for r in images:
    img = own(r["image_path"])
    own(r["pb_path"])
    data = fits_whole(img, (r["ny"], r["nx"]))
    if data is not None and abs(np.nanmax(data) - r["peak_jy"]) > 1e-4 * abs(r["peak_jy"]):
        bad(f"{img}: peak {np.nanmax(data)}, the row says {r['peak_jy']}")
    fits_whole(r["pb_path"], (r["ny"], r["nx"]))
    prefix = img[: -len("-image.fits")]
    # The imaging stage's companions of the image (ct_imaging_outputs).
    for suffix in ("dirty.fits", "psf.fits", "model.fits", "residual.fits", "image.png"):
        companion = f"{prefix}-{suffix}"
        owned.add(companion)
        if not os.path.isfile(companion) or os.path.getsize(companion) == 0:
            bad(f"{companion}: the image's companion is missing or empty")
        elif suffix.endswith(".fits"):
            fits_whole(companion)

for r in mosaics:
    for key in ("path", "noise_path", "weight_path"):
        fits_whole(own(r[key]), (r["ny"], r["nx"]) if key == "path" else None)
    for tile in r["tiles"]:
        base = own(tile["path"])[: -len(".fits")]
        fits_whole(base + ".fits")
        for suffix in ("-noise.fits", "-weight.fits"):
            owned.add(base + suffix)
            fits_whole(base + suffix)

# ---- leftovers -----------------------------------------------------------------------------
for root, _, files in os.walk(products):
    for name in files:
        path = os.path.join(root, name)
        if ".tmp-" in name:
            bad(f"temporary file left: {path}")
        elif os.path.realpath(path) not in owned:
            bad(f"orphan file (no row owns it): {path}")

if violations:
    for v in violations:
        print("VIOLATION:", v)
    sys.exit(1)
retried = sum(1 for t in tasks if t["attempt"] > 1)
print(f"invariants held: {len(tasks)} tasks ({sum(1 for t in tasks if t['status'] == 'completed')} "
      f"completed, {retried} after a retry, {len(failed)} dead-lettered with a category), {len(vis)} visibility, "
      f"{len(images)} image and {len(mosaics)} mosaic rows, {len(owned)} files, no leftovers")
