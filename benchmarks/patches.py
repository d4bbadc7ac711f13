"""Patch extraction benchmark at full scale: four ratios measured in one run.

    python benchmarks/patches.py --cache DIR [--studies 4] [--seed 0] [--naive-lesions 3] [--repeats 3]

Data (made once, cached under ``--cache``; a rerun reuses it): ``--studies`` whole-body studies from the
project's generator at ``full`` scale — Siemens protocol (512 x 512 CT slices at 2 mm, the largest volumes:
seed 0's first study is CT 427 x 512 x 512, 0.22 GB int16, and its PET, on its own grid of 4 x 4 x 3 mm voxels,
285 x 220 x 220, 0.06 GB float32), 18-22 lesions each, all delivered as NIfTI — ingested with
``tasks.ingest`` and linked (rules backend) for the caption samples.

(a) naive: per lesion, load the whole CT, PET and lesion mask from the raw NIfTI with SimpleITK and resample
    them onto both patch grids (``--naive-lesions`` lesions, in a fresh process) — against our seconds per
    lesion from (b). (The naive side is spared instance labelling: it resamples the binary mask.)
(b) per study, single-threaded (one zarr decoding thread, as in a 1-thread Dask worker): our sweep
    (``tasks.patches.resample.compute_study``: read + resample every lesion's two patches, no writing)
    against decoding exactly the chunks those patches need, through the same reader (zarr, one chunk per
    call) — the floor of any extraction from this store. The codec-only floor (the chunk files' bytes read and
    Blosc-decompressed directly, no zarr) is printed too. Ratio = floor / ours (goal >= 0.5). CPU seconds
    are shown beside wall seconds: they are less disturbed by other load on the machine.
(c) the real driver (``extract_patches``: Dask tasks, patch store writes, sample table) over all caption
    samples, on the driver's LocalCluster (``local_cluster``) of 1 worker process against 2 (1 thread each;
    cluster started before timing); ratio t1 / t2 (goal >= 1.7). The stores are compared (identical); each
    worker's peak RSS and CPU seconds (user + system) are shown: their sum against the wall time tells how
    much of the two cores the workers actually got.
(d) peak RSS (``VmHWM``) of a fresh process extracting every lesion of the largest study into a patch store,
    and of the same study stacked twice along z (a volume twice as long) — flat as the volume grows
    (goal < 300 MB). The RSS right after imports is shown apart.

Load: other processes on these 2 cores disturb wall-clock numbers; the 1-minute load average is printed at
each step, every timing is the best of ``--repeats`` interleaved runs, and the script warns when the load was
high. Rerun on a quieter machine if the numbers look disturbed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LESIONS_PER_STUDY = (18, 22)


def _peak_rss_mb() -> float:
    """This process's peak resident memory (MB): Linux ``VmHWM`` (``ru_maxrss`` survives exec in a child)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


# ------------------------------------------------------------------------------------------ children
def child_naive(raw: str, rows_json: str) -> dict:
    """Per lesion: whole volumes from NIfTI with SimpleITK, resampled onto both patch grids."""
    import SimpleITK as sitk

    from tasks.patches.resample import FieldOfView

    rows = json.loads(rows_json)
    identity = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    times = []
    for r in rows:
        t0 = time.perf_counter()
        images = [sitk.ReadImage(str(Path(raw) / rel)) for rel in (r["ct"], r["pet"], r["lesions"])]
        for f in r["fovs"]:
            fov = FieldOfView(f["name"], tuple(f["size"]), tuple(f["spacing"]))
            for image, pad in zip(images, (-1000.0, 0.0, 0.0)):
                patch = sitk.Resample(image, [int(v) for v in fov.size[::-1]], sitk.Transform(), sitk.sitkLinear,
                                      tuple(float(v) for v in fov.origin(r["centre"])), fov.spacing, identity,
                                      pad, sitk.sitkFloat32)
                sitk.GetArrayViewFromImage(patch).sum()
        del images
        times.append(time.perf_counter() - t0)
    return {"seconds": times, "peak_rss_mb": _peak_rss_mb()}


def child_rss(job_json: str) -> dict:
    """Extract every lesion of one study into a patch store; this process's peak RSS."""
    import numpy as np  # noqa: F401  (imports first, so the baseline includes them)
    import zarr

    from tasks.patches import resample

    zarr.config.set({"threading.max_workers": 1})  # as in a 1-thread Dask worker process

    job = _job_from_json(job_json)
    baseline = _peak_rss_mb()
    t0 = time.perf_counter()
    done = resample.extract_study(job)
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": _peak_rss_mb(), "import_rss_mb": baseline,
            "rows": len(done.rows), "chunks": done.chunks_decoded}


def _job_to_json(job) -> str:
    import dataclasses

    return json.dumps(dataclasses.asdict(job))


def _job_from_json(text: str):
    from tasks.patches.resample import FieldOfView, Request, StudyJob

    d = json.loads(text)
    d["requests"] = tuple(Request(r["row"], r["instance"], tuple(r["centre_mm"]), tuple(r["bbox"]))
                          for r in d["requests"])
    d["fovs"] = tuple(FieldOfView(f["name"], tuple(f["size"]), tuple(f["spacing"])) for f in d["fovs"])
    return StudyJob(**d)


def _run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=REPO,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ data
def prepare(cache: Path, studies: int, seed: int):
    """Generate, ingest and link the cohort once; later runs find it complete and skip."""
    from data_contracts.settings import Settings, SynthSettings
    from tasks.ingest import ingest_all
    from tasks.link import link_dataset
    from tasks.synth.cohort import synthesize_cohort

    synth = SynthSettings(lesions_per_patient=LESIONS_PER_STUDY, followup_fraction=0.0, dicom_vendors=(),
                          vendor_mix=(1.0, 0.0, 0.0), workers=2)
    settings = Settings(home=cache / "home", synth=synth)
    marker = cache / "home" / "prepared.json"
    recipe = {"studies": studies, "seed": seed, "lesions": list(LESIONS_PER_STUDY), "scale": "full"}
    if marker.exists() and json.loads(marker.read_text()) == recipe:
        print(f"data: cached in {cache}")
        return settings
    t0 = time.perf_counter()
    print(synthesize_cohort(settings.raw_dir, studies, seed, "full", settings=settings, progress=True))
    print(ingest_all(settings, progress=True))
    print(link_dataset(settings, "rules"))
    marker.write_text(json.dumps(recipe))
    print(f"data: generated, ingested and linked in {time.perf_counter() - t0:.0f} s")
    return settings


def jobs_for(settings, fovs) -> list:
    """One job per study with every lesion of it (rows numbered per study; no patch store)."""
    from tasks.ingest import list_studies, open_study
    from tasks.patches.resample import Request, StudyJob

    jobs = []
    for sid in list_studies(settings.store_url):
        lesions = open_study(settings.store_url, sid).lesion_records
        requests = tuple(Request(i, l.instance, l.centroid_mm, l.bbox) for i, l in enumerate(lesions))
        jobs.append(StudyJob(settings.store_url, sid, requests, fovs))
    return jobs


# ------------------------------------------------------------------------------------------ (b) floor
def decode_touched(job, touched) -> None:
    """Decode exactly the chunks the patches need, one zarr read per chunk."""
    from tasks.patches.volume_io import study_arrays

    arrays = study_arrays(job.volume_store, job.study_id).arrays
    for name, chunks in touched.items():
        array = arrays[name]
        c = array.chunks
        for i, j, k in sorted(chunks):
            array[i * c[0]:(i + 1) * c[0], j * c[1]:(j + 1) * c[1], k * c[2]:(k + 1) * c[2]]


def decode_touched_raw(job, touched) -> int:
    """The codec-only floor: the chunk files' bytes read and Blosc-decompressed directly (local store only).
    Returns the number of chunk files decoded."""
    from numcodecs import blosc
    from zarr.codecs import BloscCodec

    from tasks.patches.volume_io import study_arrays

    arrays = study_arrays(job.volume_store, job.study_id).arrays
    n = 0
    for name, chunks in touched.items():
        array = arrays[name]
        if [type(c) for c in array.compressors] != [BloscCodec]:
            raise ValueError(f"{name}: the codec-only floor decodes Blosc chunks; this store uses {array.compressors}")
        root = Path(job.volume_store) / array.path / "c"  # <store>/<study>/<version>/<array>/c/<z>/<y>/<x>
        for i, j, k in chunks:
            path = root / str(i) / str(j) / str(k)
            if path.exists():  # absent: an all-zero chunk zarr never wrote (nothing to decode either way)
                blosc.decompress(path.read_bytes())
                n += 1
    return n


def _clock(fn) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


# ------------------------------------------------------------------------------------------ (d) a longer volume
def stacked_copy(settings, study_id: str, dst_store: str) -> None:
    """The study with its volume stacked twice along z (lesions only in the first copy): 2x the voxels."""
    import numpy as np

    from data_contracts.settings import IngestSettings
    from data_contracts.geometry import Geometry
    from tasks.ingest.store import StudyWriter, open_study

    st = open_study(settings.store_url, study_id)
    writer = StudyWriter(dst_store, study_id, IngestSettings(chunks=tuple(st.ct.chunks)))
    for name, src, grid in (("ct", st.ct, st.geometry), ("pet", st.pet, st.pet_geometry),
                            ("lesions", st.lesions, st.geometry)):
        z = src.shape[0]
        tall = Geometry((2 * z, *grid.shape[1:]), grid.spacing, grid.origin, grid.direction)
        out = writer.create(name, tall)
        step = src.chunks[0]
        for z0 in range(0, z, step):
            block = src[z0:z0 + step]
            out[z0:z0 + block.shape[0]] = block
            if name != "lesions":
                out[z + z0:z + z0 + block.shape[0]] = block
        del block
    writer.commit({k: v for k, v in st.attrs.items() if k != "petcap_complete"})
    assert np.asarray(st.ct.shape).prod() > 0


# ------------------------------------------------------------------------------------------ main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True, help="folder for the generated data (reused)")
    ap.add_argument("--studies", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--naive-lesions", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    import zarr

    from data_contracts.settings import PatchSettings
    from data_contracts.tables import CAPTION_SAMPLES
    from tasks.ingest import open_study
    from tasks.patches import resample
    from tasks.patches.store import fields_of_view
    from tasks.patches.volume_io import study_arrays

    args.cache.mkdir(parents=True, exist_ok=True)
    settings = prepare(args.cache, args.studies, args.seed)
    fovs = fields_of_view(PatchSettings())
    jobs = jobs_for(settings, fovs)
    lesions = sum(len(j.requests) for j in jobs)
    shapes = {j.study_id: open_study(settings.store_url, j.study_id).ct.shape for j in jobs}
    print(f"\n{len(jobs)} studies, {lesions} lesions; CT grids {sorted(set(shapes.values()))}; "
          f"fields of view {[(f.name, f.size, f.spacing) for f in fovs]}; {os.cpu_count()} cores, {_load()}")
    loads = [os.getloadavg()[0]]

    # (b) ours vs decoding exactly the touched chunks, single-threaded
    zarr.config.set({"threading.max_workers": 1})
    from numcodecs import blosc

    blosc.set_nthreads(1)
    touched = [resample.touched_chunks(j) for j in jobs]
    chunks = sum(len(c) for t in touched for c in t.values())
    best = {"ours": [np.inf, np.inf], "floor": [np.inf, np.inf], "raw": [np.inf, np.inf]}
    for _ in range(args.repeats):
        for name, fn in (("floor", lambda: [decode_touched(j, t) for j, t in zip(jobs, touched)]),
                         ("ours", lambda: [resample.compute_study(j) for j in jobs]),
                         ("raw", lambda: [decode_touched_raw(j, t) for j, t in zip(jobs, touched)])):
            wall, cpu = _clock(fn)
            best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
        loads.append(os.getloadavg()[0])
    ours_per_lesion = best["ours"][0] / lesions
    print(f"\n(b) decode floor vs ours, all {len(jobs)} studies, best of {args.repeats}, 1 thread ({_load()}):")
    print(f"    chunks the patches need: {chunks}")
    print(f"    ours (read + resample)    wall {best['ours'][0]:6.2f} s  cpu {best['ours'][1]:6.2f} s  "
          f"({1000 * ours_per_lesion:.0f} ms per lesion, both patches)")
    print(f"    floor: zarr chunk reads   wall {best['floor'][0]:6.2f} s  cpu {best['floor'][1]:6.2f} s")
    print(f"    codec-only floor          wall {best['raw'][0]:6.2f} s  cpu {best['raw'][1]:6.2f} s")
    ratio_b = best["floor"][0] / best["ours"][0]
    print(f"    ratio floor / ours = {ratio_b:.2f} wall, {best['floor'][1] / best['ours'][1]:.2f} cpu "
          f"(goal >= 0.5); against the codec-only floor {best['raw'][0] / best['ours'][0]:.2f}")

    # (a) naive
    job = jobs[0]
    manifest = {r.study_key: r for r in _manifest(settings)}
    from tasks.ingest.pseudonym import study_pseudonym

    key = next(k for k in manifest if study_pseudonym(k, settings.pseudonym_key) == job.study_id)
    row = manifest[key]
    naive_rows = [{"ct": row.ct_path, "pet": row.pet_path, "lesions": row.lesions_path, "centre": list(r.centre_mm),
                   "fovs": [{"name": f.name, "size": list(f.size), "spacing": list(f.spacing)} for f in fovs]}
                  for r in job.requests[:args.naive_lesions]]
    naive = _run_child("naive", str(settings.raw_dir), json.dumps(naive_rows))
    naive_per_lesion = min(naive["seconds"])
    loads.append(os.getloadavg()[0])
    print(f"\n(a) naive per lesion (SimpleITK: whole CT, PET, mask from NIfTI + resampling): "
          f"{naive_per_lesion:.2f} s (of {', '.join(f'{s:.2f}' for s in naive['seconds'])}); ours "
          f"{1000 * ours_per_lesion:.0f} ms -> {naive_per_lesion / ours_per_lesion:.0f}x (goal >= 50x) ({_load()})")

    # (c) the driver on 1 vs 2 worker processes
    from distributed import Client

    from tasks.patches.extract import extract_patches, local_cluster
    from tasks.patches.store import open_store

    samples = CAPTION_SAMPLES.read(settings.table_path("caption_samples"))
    runs = {}
    scratch = Path(tempfile.mkdtemp(prefix="patches-bench-", dir=args.cache))
    try:
        for workers in (1, 2, 1, 2)[: 2 * max(1, min(args.repeats, 2))]:
            home = scratch / f"w{workers}-{len(runs)}"
            (home / "tables").mkdir(parents=True)
            shutil.copy(settings.table_path("caption_samples"), home / "tables")
            cfg = PatchSettings(workers=workers, threads_per_worker=1, processes=True)
            run_settings = settings.model_copy(update={"home": home, "tables_dir": home / "tables", "patches": cfg,
                                                       "raw_dir": settings.raw_dir})
            with local_cluster(cfg) as cluster, Client(cluster) as client:
                cpu0 = client.run(_cpu_seconds)
                t0 = time.perf_counter()
                summary = extract_patches(run_settings, progress=False, client=client)
                seconds = time.perf_counter() - t0
                cpu = sum(v - cpu0[k] for k, v in client.run(_cpu_seconds).items())
                rss = client.run(_peak_rss_mb)
            loads.append(os.getloadavg()[0])
            if workers not in runs or seconds < runs[workers][0]:
                runs[workers] = (seconds, summary, rss, run_settings, cpu)
        (t1, s1, rss1, set1, cpu1), (t2, _, rss2, set2, cpu2) = runs[1], runs[2]
        same = all(np.array_equal(open_store(set1)[k][:], open_store(set2)[k][:], equal_nan=True)
                   for k in ("localizer", "captioner"))
        print(f"\n(c) extract_patches, {len(samples)} caption samples in {s1.tasks} study tasks ({_load()}):")
        for n, t, cpu, rss in ((1, t1, cpu1, rss1), (2, t2, cpu2, rss2)):
            print(f"    {n} worker{'s' if n > 1 else ' '} {t:6.2f} s   worker cpu {cpu:5.2f} s ({cpu / t:.2f} cores)   "
                  f"worker peak RSS {', '.join(f'{v:.0f}' for v in rss.values())} MB")
        print(f"    speed-up {t1 / t2:.2f}x (goal >= 1.7); stores identical: {same}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    # (d) peak RSS of one study, and of the same study twice as long
    biggest = max(jobs, key=lambda j: np.prod(shapes[j.study_id]))
    st = open_study(settings.store_url, biggest.study_id)
    gb = (st.ct.nbytes + st.pet.nbytes + st.lesions.nbytes) / 1e9
    scratch = Path(tempfile.mkdtemp(prefix="patches-rss-", dir=args.cache))
    try:
        print(f"\n(d) peak RSS, study {biggest.study_id}: CT {st.ct.shape} (PET {st.pet.nbytes / 1e9:.2f} GB "
              f"float32; CT + PET + labels {gb:.2f} GB decoded), {len(biggest.requests)} lesions:")
        results = []
        for label, store in (("as ingested", settings.store_url), ("stacked 2x along z", str(scratch / "tall.zarr"))):
            if store != settings.store_url:
                stacked_copy(settings, biggest.study_id, store)
            patches = str(scratch / f"patches-{len(results)}.zarr")
            group = zarr.open_group(patches, mode="w")
            for f in fovs:
                group.create_array(f.name, shape=(len(biggest.requests), 3, *f.size), chunks=(1, 3, *f.size),
                                   dtype="float16", fill_value=float("nan"))
            job = resample.StudyJob(store, biggest.study_id, biggest.requests, fovs, patches)
            r = _run_child("rss", _job_to_json(job))
            results.append(r)
            size = study_arrays(store, biggest.study_id).arrays["pet"].nbytes / 1e9
            print(f"    {label:20s} PET {size:.2f} GB: peak RSS {r['peak_rss_mb']:.0f} MB (after imports "
                  f"{r['import_rss_mb']:.0f} MB), {r['seconds']:.1f} s, {r['rows']} lesions")
        print(f"    growth with a 2x longer volume: {results[1]['peak_rss_mb'] - results[0]['peak_rss_mb']:+.0f} MB "
              f"(goal: peak < 300 MB and flat)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    loads.append(os.getloadavg()[0])
    print(f"\nsummary: (a) {naive_per_lesion / ours_per_lesion:.0f}x  (b) {ratio_b:.2f}  (c) {t1 / t2:.2f}x  "
          f"(d) {max(r['peak_rss_mb'] for r in results):.0f} MB")
    if max(loads) > 1.5:
        print(f"note: the 1-minute load average reached {max(loads):.1f} on {os.cpu_count()} cores during the run "
              f"(other processes): wall-clock ratios may be disturbed; compare the cpu columns, or rerun.")
    return 0


def _manifest(settings):
    from data_contracts.tables import MANIFEST

    return MANIFEST.records(MANIFEST.read(settings.raw.manifest))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        result = {"naive": child_naive, "rss": child_rss}[kind](*rest)
        print(json.dumps(result))
        sys.exit(0)
    sys.exit(main())
