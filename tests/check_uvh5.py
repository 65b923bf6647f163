#!/usr/bin/python3
"""Reads a UVH5 file written by test_uvh5 with Debian's h5py and checks it.

Usage: check_uvh5.py FILE {4d|3d} {f4|f8}
       check_uvh5.py --rewrite SRC DST

The second form is the other direction: it copies SRC into DST written entirely by h5py,
the way older pyuvdata wrote DSA-110 files (numpy bytes strings, a variable-length
history, scalar channel_width, freq_array shaped (1, Nfreqs), no flex_spw, h5py's own
complex and bool types), so the C reader can be tested on a file it did not write.

Checks dataset names, shapes, dtypes (visdata a compound of float32 r/i, flags a bool
enum h5py reads as numpy bool, nsamples float32, strings fixed-length bytes) and every
value, recomputed here independently from the same definitions test_uvh5.c uses.
Exits 1 naming each mismatch, 0 when the file is as expected.
"""
import sys

import h5py
import numpy as np

NANT, NANT_TEL, NTIMES, NFREQS, NPOLS = 5, 7, 3, 8, 2
NBLS = NANT * (NANT + 1) // 2
NBLTS = NBLS * NTIMES

problems = []


def check(cond, what):
    if not cond:
        problems.append(what)


def hash32(k):
    """Same as hash32() in test_uvh5.c, vectorized over uint64 k."""
    x = (k * np.uint64(2654435761) + np.uint64(12345)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0x5BD1E995)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(15)
    return x


def expected_data(shape):
    i = np.arange(NBLTS * NFREQS * NPOLS, dtype=np.uint64)
    a = hash32(np.uint64(2) * i)
    b = hash32(np.uint64(2) * i + np.uint64(1))
    re = ((a & np.uint64(0xFFFF)).astype(np.int64) - 32768).astype(np.float32) / np.float32(64)
    im = ((b & np.uint64(0xFFFF)).astype(np.int64) - 32768).astype(np.float32) / np.float32(64)
    flags = ((a >> np.uint64(16)) & np.uint64(1)).astype(bool)
    ns = ((b >> np.uint64(16)) & np.uint64(0xFF)).astype(np.float32) / np.float32(16)
    return (re.reshape(shape), im.reshape(shape), flags.reshape(shape), ns.reshape(shape))


def scalar_string(h, name, want):
    d = h[name]
    check(d.shape == (), f"Header/{name} shape {d.shape}, want scalar")
    check(d.dtype.kind == "S", f"Header/{name} dtype {d.dtype}, want fixed-length bytes")
    v = d[()]
    check(isinstance(v, bytes), f"Header/{name} read as {type(v)}, want bytes")
    check(v == want, f"Header/{name} = {v!r}, want {want!r}")


def scalar_int(h, name, want):
    d = h[name]
    check(d.shape == () and d.dtype.kind == "i", f"Header/{name} {d.shape} {d.dtype}")
    check(int(d[()]) == want, f"Header/{name} = {d[()]}, want {want}")


def rewrite(src, dst):
    with h5py.File(src, "r") as fi, h5py.File(dst, "w") as fo:
        hi, ho = fi["Header"], fo.create_group("Header")
        for name in ["Nants_data", "Nants_telescope", "Nbls", "Nblts", "Ntimes", "Nfreqs",
                     "Npols"]:
            ho[name] = int(hi[name][()])
        ho["Nspws"] = np.int32(hi["Nspws"][()])
        for name in ["latitude", "longitude", "altitude"]:
            ho[name] = float(hi[name][()])
        for name in ["telescope_name", "instrument", "version", "phase_type", "object_name"]:
            ho[name] = np.bytes_(hi[name][()])
        ho["history"] = hi["history"][()].decode()  # h5py: variable-length UTF-8
        for name in ["antenna_numbers", "antenna_positions", "ant_1_array", "ant_2_array",
                     "time_array", "integration_time", "uvw_array", "spw_array",
                     "polarization_array"]:
            ho[name] = hi[name][()]
        ho["antenna_names"] = np.asarray(hi["antenna_names"][()], dtype="S")
        ho["freq_array"] = hi["freq_array"][()].reshape(1, -1)
        ho["channel_width"] = float(hi["channel_width"][0])
        xo = ho.create_group("extra_keywords")
        for k, v in hi["extra_keywords"].items():
            xo[k] = v[()]
        do = fo.create_group("Data")
        do["visdata"] = fi["Data/visdata"][()].astype(np.complex64)
        do["flags"] = fi["Data/flags"][()].astype(bool)
        do["nsamples"] = fi["Data/nsamples"][()].astype(np.float32)
    return 0


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--rewrite":
        return rewrite(sys.argv[2], sys.argv[3])
    if len(sys.argv) != 4 or sys.argv[2] not in ("4d", "3d") or sys.argv[3] not in ("f4", "f8"):
        print(__doc__, file=sys.stderr)
        return 2
    path, layout, uvw_dtype = sys.argv[1:]
    shape = (NBLTS, 1, NFREQS, NPOLS) if layout == "4d" else (NBLTS, NFREQS, NPOLS)
    with h5py.File(path, "r") as f:
        check(set(f.keys()) == {"Header", "Data"}, f"top level {sorted(f.keys())}")
        h, d = f["Header"], f["Data"]
        required = """latitude longitude altitude telescope_name instrument history Nants_data
            Nants_telescope Nbls Nblts Nspws Nfreqs Npols Ntimes ant_1_array ant_2_array
            time_array integration_time uvw_array antenna_numbers antenna_names
            antenna_positions freq_array channel_width spw_array flex_spw polarization_array
            version phase_type object_name extra_keywords""".split()
        for name in required:
            check(name in h, f"Header/{name} missing")
        if problems:
            return report()

        for name, want in [("Nants_data", NANT), ("Nants_telescope", NANT_TEL), ("Nbls", NBLS),
                           ("Nblts", NBLTS), ("Ntimes", NTIMES), ("Nfreqs", NFREQS),
                           ("Npols", NPOLS), ("Nspws", 1)]:
            scalar_int(h, name, want)
        for name, want in [("latitude", 37.2339), ("longitude", -118.2825), ("altitude", 1222.0)]:
            check(h[name].dtype == np.float64 and h[name][()] == want, f"Header/{name}")
        for name, want in [("telescope_name", b"OVRO_MMA"), ("instrument", b"DSA"),
                           ("history", b"written by contimg test_uvh5"), ("version", b"1.1"),
                           ("phase_type", b"drift"), ("object_name", b"test-field")]:
            scalar_string(h, name, want)

        check(h["flex_spw"].dtype == np.bool_ and h["flex_spw"][()] == np.False_,
              f"Header/flex_spw {h['flex_spw'].dtype} {h['flex_spw'][()]}")
        names = h["antenna_names"][()]
        want_names = [f"pad{i * 13}".encode() for i in range(NANT_TEL)]
        check(names.dtype.kind == "S" and list(names) == want_names,
              f"Header/antenna_names {names!r}")
        check(np.array_equal(h["antenna_numbers"][()], np.arange(NANT_TEL)), "antenna_numbers")
        i = np.arange(NANT_TEL, dtype=np.float64)
        pos = np.stack([i * 10.5, -i * 3.25, i * 0.5], axis=1)
        check(h["antenna_positions"].shape == (NANT_TEL, 3) and
              np.array_equal(h["antenna_positions"][()], pos), "antenna_positions")

        a1 = [a for t in range(NTIMES) for a in range(NANT) for b in range(a, NANT)]
        a2 = [b for t in range(NTIMES) for a in range(NANT) for b in range(a, NANT)]
        tt = np.repeat(np.arange(NTIMES), NBLS)
        check(np.array_equal(h["ant_1_array"][()], a1), "ant_1_array")
        check(np.array_equal(h["ant_2_array"][()], a2), "ant_2_array")
        times = 2460000.5 + tt * 12.884902 / 86400.0
        check(np.array_equal(h["time_array"][()], times), "time_array")
        check(np.all(h["integration_time"][()] == 12.884902), "integration_time")
        uvw = (pos[a2] - pos[a1]) * 1.0001 + tt[:, None] * 0.1
        check(h["uvw_array"].dtype == np.dtype(uvw_dtype),
              f"uvw_array dtype {h['uvw_array'].dtype}, want {uvw_dtype}")
        check(h["uvw_array"].shape == (NBLTS, 3), f"uvw_array shape {h['uvw_array'].shape}")
        check(np.array_equal(h["uvw_array"][()], uvw.astype(uvw_dtype)), "uvw_array values")

        freqs = 1498.75e6 - np.arange(NFREQS) * 244140.625
        fshape = (1, NFREQS) if layout == "4d" else (NFREQS,)
        check(h["freq_array"].shape == fshape, f"freq_array shape {h['freq_array'].shape}")
        check(np.array_equal(h["freq_array"][()].ravel(), freqs), "freq_array values")
        check(np.all(np.diff(h["freq_array"][()].ravel()) < 0), "frequencies not descending")
        check(np.array_equal(h["channel_width"][()], np.full(NFREQS, 244140.625)),
              "channel_width")
        check(np.array_equal(h["spw_array"][()], [0]), "spw_array")
        check(np.array_equal(h["polarization_array"][()], [-5, -6]), "polarization_array")

        x = h["extra_keywords"]
        check(x["phase_center_dec"][()] == 0.6, "extra_keywords/phase_center_dec")
        check(x["ha_phase_center"][()] == 0.0, "extra_keywords/ha_phase_center")
        check(x["phase_center_epoch"][()] == b"HADEC", "extra_keywords/phase_center_epoch")

        check(set(d.keys()) == {"visdata", "flags", "nsamples"}, f"Data {sorted(d.keys())}")
        vis, flg, nsm = d["visdata"], d["flags"], d["nsamples"]
        for name, ds in [("visdata", vis), ("flags", flg), ("nsamples", nsm)]:
            check(ds.shape == shape, f"Data/{name} shape {ds.shape}, want {shape}")
            check(ds.chunks is not None, f"Data/{name} is not chunked")
        # h5py presents a compound {r, i} of float32 as complex64; check the HDF5 type too.
        check(vis.dtype == np.complex64, f"Data/visdata dtype {vis.dtype}, want complex64")
        vt = vis.id.get_type()
        check(vt.get_class() == h5py.h5t.COMPOUND and vt.get_nmembers() == 2 and
              [vt.get_member_name(k) for k in range(2)] == [b"r", b"i"] and
              all(vt.get_member_type(k).get_class() == h5py.h5t.FLOAT and
                  vt.get_member_type(k).get_size() == 4 for k in range(2)),
              "Data/visdata is not a compound of float32 r, i")
        check(flg.dtype == np.bool_, f"Data/flags dtype {flg.dtype}, want bool")
        check(flg.id.get_type().get_class() == h5py.h5t.ENUM, "Data/flags is not an HDF5 enum")
        check(nsm.dtype == np.float32, f"Data/nsamples dtype {nsm.dtype}")
        if problems:
            return report()

        re, im, fl, ns = expected_data(shape)
        v = vis[()]
        nbad = int(np.count_nonzero(v.real != re) + np.count_nonzero(v.imag != im))
        check(nbad == 0, f"Data/visdata: {nbad} values differ")
        check(np.array_equal(flg[()], fl), f"Data/flags: {np.count_nonzero(flg[()] != fl)} differ")
        check(np.array_equal(nsm[()], ns), f"Data/nsamples: {np.count_nonzero(nsm[()] != ns)} differ")
    return report()


def report():
    for p in problems:
        print(f"check_uvh5: {sys.argv[1]}: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"check_uvh5: {sys.argv[1]}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
