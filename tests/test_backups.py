"""`engine backup`: real archives of real folders, corrupted, truncated, hostile and pruned."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import random
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_cli, write_csv
from engine.errors import BackupError
from engine.governance.backup_archive import FORMAT, MANIFEST_NAME, collect_files, manifest_for, write_archive
from engine.governance.backups import backup_name, list_backups, restore_backup, verify
from engine.governance.retention import RetentionPolicy, backups_to_keep

UTC = dt.timezone.utc


def _folders(root: Path) -> tuple[Path, Path]:
    data = write_csv(root / "data" / "sales.csv", [("2024-01-01", "P1", "1.00", "C1")]).parent
    (data / "nested").mkdir()
    (data / "nested" / "more.csv").write_bytes(os.urandom(50_000))
    (data / "empty-folder").mkdir()
    output = root / "output"
    (output / "lineage").mkdir(parents=True)
    (output / "daily_sales_summary.csv").write_text("date,total_amount\n2024-01-01,1.00\n")
    (output / "lineage" / "events.jsonl").write_text('{"eventType": "COMPLETE"}\n')
    return data, output


def _backup(tmp_path: Path, *args: str, audit: Path | None = None):
    env = {"ENGINE__AUDIT__PATH": str(audit)} if audit else None
    return run_cli("backup", *args, "--directory", str(tmp_path / "backups"), cwd=tmp_path, env=env)


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path below `root` with its content (None for folders)."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
            for p in sorted(root.rglob("*")) if not p.is_symlink()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _only_archive(tmp_path: Path) -> Path:
    [backup] = list_backups(tmp_path / "backups")
    return backup.path


def test_create_list_verify_restore_round_trip(tmp_path):
    data, output = _folders(tmp_path)
    audit = tmp_path / "audit.jsonl"
    done = _backup(tmp_path, "create", str(data), str(output), audit=audit)
    assert done.returncode == 0, done.stderr
    archive = _only_archive(tmp_path)
    assert archive.name.startswith("backup-") and archive.name.endswith(".tar.gz")
    sidecar = Path(f"{archive}.sha256")
    assert sidecar.read_text() == f"{hashlib.sha256(archive.read_bytes()).hexdigest()}  {archive.name}\n"
    for path in (archive, sidecar):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o750
    assert not [p for p in (tmp_path / "backups").iterdir() if p.name.endswith(".tmp")]

    with tarfile.open(archive) as opened:
        first = opened.next()
        assert first.name == MANIFEST_NAME
        manifest = json.loads(opened.extractfile(first).read())
    listed = {f["path"]: f for f in manifest["files"]}
    assert listed["data/nested/more.csv"]["sha256"] == _sha256(data / "nested" / "more.csv")
    assert listed["output/lineage/events.jsonl"]["size"] == (output / "lineage/events.jsonl").stat().st_size

    listing = _backup(tmp_path, "list")
    assert listing.returncode == 0 and archive.name in listing.stdout
    verified = _backup(tmp_path, "verify")
    assert verified.returncode == 0, verified.stderr
    assert f"ok      {archive.name}: 4 files" in verified.stdout

    target = tmp_path / "restored"
    done = _backup(tmp_path, "restore", archive.name, "--target", str(target), audit=audit)
    assert done.returncode == 0, done.stderr
    assert _tree(target / "data") == _tree(data) and _tree(target / "output") == _tree(output)
    assert (target / "data" / "empty-folder").is_dir()
    for path in target.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o750 if path.is_dir() else 0o640), path
    assert sorted(os.listdir(target)) == ["data", "output"]

    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [r["operation"] for r in records] == ["backup.create", "backup.restore"]
    created, restored = records
    assert created["outputs"] == [{"path": str(archive), "size": archive.stat().st_size,
                                   "sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}]
    assert {i["path"] for i in created["inputs"]} == {str(data.resolve()), str(output.resolve())}
    assert restored["inputs"][0]["sha256"] == created["outputs"][0]["sha256"]
    assert [o["sha256"] for o in restored["outputs"]] == [i["sha256"] for i in created["inputs"]]


def test_restore_refuses_a_folder_that_is_not_empty_and_a_missing_archive(tmp_path):
    data, _ = _folders(tmp_path)
    assert _backup(tmp_path, "create", str(data)).returncode == 0
    archive = _only_archive(tmp_path)
    done = _backup(tmp_path, "restore", archive.name, "--target", str(data))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {data}: restore needs a new or empty folder; this one is not empty"
    done = _backup(tmp_path, "restore", "backup-20990101T000000Z.tar.gz", "--target", str(tmp_path / "new"))
    assert done.returncode == 3 and "backup-20990101T000000Z.tar.gz: no such backup" in done.stderr
    assert not (tmp_path / "new").exists()


def test_create_refuses_a_missing_source(tmp_path):
    done = _backup(tmp_path, "create", str(tmp_path / "absent"))
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == f"error: {tmp_path / 'absent'}: cannot back up: the folder does not exist"
    assert list_backups(tmp_path / "backups") == []


def test_create_says_where_a_source_that_is_not_a_folder_was_named(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    done = _backup(tmp_path, "create", str(tmp_path / "a-file"))
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == f"error: {tmp_path / 'a-file'}: cannot back up: not a folder"
    configured = run_cli("backup", "create", "--directory", str(tmp_path / "backups"), cwd=tmp_path,
                         env={"ENGINE__BACKUP__SOURCES": "[gone]"})
    assert configured.returncode == 2
    assert configured.stderr.splitlines()[-1] == ("error: gone: cannot back up: the folder does not exist "
                                                  "(backup.sources)")
    default = run_cli("backup", "create", "--directory", str(tmp_path / "backups"), cwd=tmp_path)
    assert default.returncode == 2
    assert default.stderr.splitlines()[-1] == ("error: output: cannot back up: the folder does not exist "
                                      "(the output folder, as backup.sources is empty)")
    assert list_backups(tmp_path / "backups") == []


def test_a_file_that_changes_during_the_backup_stops_it(tmp_path):
    data, _ = _folders(tmp_path)
    folders, files = collect_files({"data": data}, exclude=None)
    (data / "nested" / "more.csv").write_bytes(os.urandom(50_000))  # same size, new content
    manifest = manifest_for(folders, files, {"data": data}, dt.datetime.now(UTC), "gzip")
    with pytest.raises(BackupError, match="more.csv: changed while it was being backed up"):
        write_archive(io.BytesIO(), "gzip", manifest, folders, files, 0o640, 0o750)


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _rewrite_checksum(archive: Path) -> None:
    Path(f"{archive}.sha256").write_text(f"{hashlib.sha256(archive.read_bytes()).hexdigest()}  {archive.name}\n")


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "truncated, checksum rewritten",
                                    "checksum file missing"])
def test_verify_catches_a_damaged_archive(tmp_path, damage):
    data, output = _folders(tmp_path)
    assert _backup(tmp_path, "create", str(data), str(output)).returncode == 0
    archive = _only_archive(tmp_path)
    size = archive.stat().st_size
    if damage == "flipped byte":
        _flip_byte(archive, size // 2)
    elif damage.startswith("truncated"):
        with open(archive, "r+b") as handle:
            handle.truncate(size // 2)
        if "rewritten" in damage:  # only the archive's own manifest can tell now
            _rewrite_checksum(archive)
    else:
        Path(f"{archive}.sha256").unlink()
    done = _backup(tmp_path, "verify", archive.name)
    assert done.returncode == 8, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {archive}: ")
    expected = {"flipped byte": "corrupt or truncated: its SHA-256 is",
                "truncated": "corrupt or truncated: its SHA-256 is",
                "truncated, checksum rewritten": "corrupt or truncated (",
                "checksum file missing": "its checksum file"}[damage]
    assert expected in line
    assert f"FAILED  {archive.name}" in done.stdout
    restored = _backup(tmp_path, "restore", archive.name, "--target", str(tmp_path / "restored"))
    assert restored.returncode == 8 and not (tmp_path / "restored").exists()


def test_verify_reports_every_archive_and_fails_if_any_is_damaged(tmp_path):
    data, _ = _folders(tmp_path)
    backups = tmp_path / "backups"
    assert _backup(tmp_path, "create", str(data)).returncode == 0
    original = _only_archive(tmp_path)
    for moment in ("20240101T000000Z", "20240102T000000Z"):
        copy = backups / f"backup-{moment}.tar.gz"
        copy.write_bytes(original.read_bytes())
        _rewrite_checksum(copy)
    original.unlink()
    Path(f"{original}.sha256").unlink()
    _flip_byte(backups / "backup-20240101T000000Z.tar.gz", 100)
    done = _backup(tmp_path, "verify")
    assert done.returncode == 8
    assert "FAILED  backup-20240101T000000Z.tar.gz" in done.stdout
    assert "ok      backup-20240102T000000Z.tar.gz" in done.stdout
    assert _backup(tmp_path, "verify", "--latest").returncode == 0


def _hostile_members(outside: Path) -> dict[str, list[tuple[tarfile.TarInfo, bytes | None]]]:
    def file(name: str, content: bytes = b"pwned\n") -> tuple[tarfile.TarInfo, bytes]:
        member = tarfile.TarInfo(name)
        member.size = len(content)
        return member, content

    def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
        member = tarfile.TarInfo(name)
        member.type, member.linkname = kind, linkname
        if kind == tarfile.CHRTYPE:
            member.devmajor, member.devminor = 1, 3
        return member, None

    return {
        "dot-dot path": [file("output/../../outside/escaped.txt")],
        "leading dot-dot": [file("../outside/escaped.txt")],
        "absolute path": [file(str(outside / "absolute.txt"))],
        "symlink out, then a file through it": [special("output/link", tarfile.SYMTYPE, str(outside)),
                                                file("output/link/through-link.txt")],
        "relative symlink": [special("output/up", tarfile.SYMTYPE, "../../outside")],
        "hard link": [special("output/hard", tarfile.LNKTYPE, str(outside / "secret.txt"))],
        "character device": [special("output/null", tarfile.CHRTYPE)],
        "fifo": [special("output/pipe", tarfile.FIFOTYPE)],
    }


def _write_hostile_archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], listed: bool = True
                           ) -> None:
    """An archive in the engine's format (manifest first, valid checksum file) that also
    carries `members`; the manifest lists them (as a forger would) if `listed`."""
    folder = tarfile.TarInfo("output")
    folder.type = tarfile.DIRTYPE
    manifest = {"format": FORMAT, "created": "2024-01-01T00:00:00Z", "compression": "gzip",
                "sources": [{"name": "output", "path": "/srv/output", "files": 0, "bytes": 0, "sha256": ""}],
                "folders": ["output", *(m.name for m, _ in members if m.isdir() and listed)],
                "files": [{"path": m.name, "size": len(c), "sha256": hashlib.sha256(c).hexdigest()}
                          for m, c in members if c is not None and listed]}
    data = json.dumps(manifest).encode()
    head = tarfile.TarInfo(MANIFEST_NAME)
    head.size = len(data)
    with tarfile.open(path, "w:gz") as archive:
        archive.addfile(head, io.BytesIO(data))
        archive.addfile(folder)
        for member, content in members:
            archive.addfile(member, io.BytesIO(content) if content is not None else None)
    _rewrite_checksum(path)


@pytest.mark.parametrize("case", list(_hostile_members(Path("/x"))))
def test_restore_refuses_a_hostile_archive_and_writes_nothing(tmp_path, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("keep me\n")
    backups = tmp_path / "backups"
    backups.mkdir()
    archive = backups / "backup-20240101T000000Z.tar.gz"
    _write_hostile_archive(archive, _hostile_members(outside)[case])
    before = _tree(tmp_path)
    target = tmp_path / "restore" / "target"

    done = _backup(tmp_path, "restore", archive.name, "--target", str(target))
    assert done.returncode == 8, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {archive}: unsafe ")
    assert _tree(tmp_path) == before  # nothing written anywhere: not outside, not even the target
    assert not (tmp_path / "restore").exists()
    assert (outside / "secret.txt").read_text() == "keep me\n"
    verify = _backup(tmp_path, "verify", archive.name)
    assert verify.returncode == 8 and "unsafe" in verify.stderr


@pytest.mark.parametrize("case", ["dot-dot path", "leading dot-dot", "absolute path"])
def test_an_unsafe_member_is_refused_even_when_the_manifest_does_not_list_it(tmp_path, case):
    outside = tmp_path / "outside"
    archive = tmp_path / "backup-20240101T000000Z.tar.gz"
    _write_hostile_archive(archive, _hostile_members(outside)[case], listed=False)
    with pytest.raises(BackupError, match="unsafe member: .* (climbs out|is an absolute path)"):
        verify(archive)
    with pytest.raises(BackupError, match="unsafe member"):
        restore_backup(archive, tmp_path / "target")
    assert not (tmp_path / "target").exists() and not outside.exists()


def test_a_folder_under_a_file_is_refused_and_the_restore_cleaned_up(tmp_path):
    clash = tarfile.TarInfo("output/report")
    clash.type = tarfile.DIRTYPE
    archive = tmp_path / "backup-20240101T000000Z.tar.gz"
    _write_hostile_archive(archive, [(_file_member("output/report"), b"a file\n"), (clash, None)])
    with pytest.raises(BackupError, match="appears twice"):
        restore_backup(archive, tmp_path / "target")
    under = tarfile.TarInfo("output/report/inside")
    under.type = tarfile.DIRTYPE
    _write_hostile_archive(archive, [(_file_member("output/report"), b"a file\n"), (under, None)], listed=True)
    with pytest.raises(BackupError, match="cannot restore 'output/report/inside'"):
        restore_backup(archive, tmp_path / "new" / "target")
    assert not (tmp_path / "new").exists()


def _file_member(name: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size = len(b"a file\n")
    return member


def _reference_keep(moments: list[dt.datetime], daily: int, weekly: int, monthly: int) -> set[dt.datetime]:
    """The retention rule computed by walking the calendar backwards from the newest
    backup: day by day, Monday-to-Sunday week by week, month by month."""
    newest, oldest = max(moments), min(moments)
    keep = {newest}

    def walk(first: dt.date, step, count: int) -> None:
        start, found = first, 0
        while found < count and step(start, 1) > oldest.date():
            inside = [m for m in moments if start <= m.date() < step(start, 1)]
            if inside:
                keep.add(max(inside))
                found += 1
            start = step(start, -1)

    def days(day: dt.date, n: int) -> dt.date:
        return day + dt.timedelta(days=n)

    def weeks(monday: dt.date, n: int) -> dt.date:
        return monday + dt.timedelta(weeks=n)

    def months(first: dt.date, n: int) -> dt.date:
        index = first.year * 12 + first.month - 1 + n
        return dt.date(index // 12, index % 12 + 1, 1)

    walk(newest.date(), days, daily)
    walk(newest.date() - dt.timedelta(days=newest.weekday()), weeks, weekly)
    walk(newest.date().replace(day=1), months, monthly)
    return keep


def _two_years_of_backups(seed: int) -> list[dt.datetime]:
    """Nightly backups over 2023-2024, some nights skipped, some with an extra manual
    backup, and a three-week outage."""
    rng = random.Random(seed)
    moments = []
    day = dt.date(2023, 1, 1)
    while day <= dt.date(2024, 12, 31):
        outage = dt.date(2024, 11, 20) <= day <= dt.date(2024, 12, 10)
        if not outage and rng.random() < 0.8:
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                moments.append(dt.datetime(day.year, day.month, day.day, rng.randrange(24), rng.randrange(60),
                                           rng.randrange(60), tzinfo=UTC))
        day += dt.timedelta(days=1)
    return sorted(set(moments))


@pytest.mark.parametrize("keep", [(7, 4, 12), (3, 2, 5), (0, 0, 0)])
def test_prune_over_two_years_keeps_exactly_the_grandfather_father_son_set(tmp_path, keep):
    moments = _two_years_of_backups(seed=sum(keep))
    backups = tmp_path / "backups"
    backups.mkdir()
    for moment in moments:
        name = backup_name(moment, "gzip")
        (backups / name).write_bytes(b"archive")
        (backups / f"{name}.sha256").write_text(f"{'0' * 64}  {name}\n")
    (backups / "notes.txt").write_text("not a backup\n")
    expected = {backup_name(m, "gzip") for m in _reference_keep(moments, *keep)}
    daily, weekly, monthly = (str(n) for n in keep)
    flags = ["--keep-daily", daily, "--keep-weekly", weekly, "--keep-monthly", monthly]

    dry = _backup(tmp_path, "prune", "--dry-run", *flags)
    assert dry.returncode == 0, dry.stderr
    assert len(list(backups.glob("*.tar.gz"))) == len(moments)
    assert f"would keep {len(expected)} backup(s)" in dry.stdout

    done = _backup(tmp_path, "prune", *flags)
    assert done.returncode == 0, done.stderr
    remaining = {p.name for p in backups.glob("*.tar.gz")}
    assert remaining == expected
    assert {p.name for p in backups.glob("*.sha256")} == {f"{n}.sha256" for n in expected}
    assert (backups / "notes.txt").exists()
    assert backup_name(moments[-1], "gzip") in remaining  # never the newest
    if keep == (7, 4, 12):
        assert len(expected) <= 7 + 4 + 12 and len(expected) >= 12
    deleted = {line.removeprefix("deleted ") for line in done.stdout.splitlines() if line.startswith("deleted ")}
    assert deleted == {backup_name(m, "gzip") for m in moments} - expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2025, 12, 31)),
                min_size=1, max_size=60, unique=True),
       st.integers(0, 9), st.integers(0, 6), st.integers(0, 14))
def test_retention_matches_the_calendar_walk(moments, daily, weekly, monthly):
    moments = [m.replace(tzinfo=UTC) for m in moments]
    kept = backups_to_keep(moments, lambda m: m, RetentionPolicy(daily, weekly, monthly))
    assert kept == _reference_keep(moments, daily, weekly, monthly)


NIGHTLY = Path(__file__).resolve().parent.parent / "cluster" / "backup"


def test_the_nightly_job_backs_up_verifies_and_prunes(tmp_path):
    """cluster/backup/nightly-backup.sh, run for real against this checkout's engine."""
    data, output = _folders(tmp_path)
    backups = tmp_path / "backups"
    backups.mkdir()
    for stamp in ("20200101T023000Z", "20200102T023000Z"):  # two old nights from one week and month
        old = backups / f"backup-{stamp}.tar.xz"
        old.write_bytes(b"old")
        _rewrite_checksum(old)
    audit = tmp_path / "audit.jsonl"
    config = tmp_path / "backup.yaml"
    config.write_text(f"audit:\n  path: {audit}\nbackup:\n  directory: {backups}\n  sources: [{data}, {output}]\n"
                      "  compression: xz\n  keep_daily: 1\n  keep_weekly: 0\n  keep_monthly: 0\n")
    engine = Path(sys.executable).parent / "engine"
    env = {name: value for name, value in os.environ.items() if name != "ENGINE__AUDIT__PATH"}  # the file says
    done = subprocess.run(["sh", str(NIGHTLY / "nightly-backup.sh")], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={**env, "ENGINE": str(engine), "CONFIG": str(config)})
    assert done.returncode == 0, done.stdout + done.stderr
    [kept] = list_backups(backups)
    assert kept.name.endswith(".tar.xz") and kept.moment.year > 2020
    assert "ok      " in done.stdout and "deleted backup-20200101T023000Z.tar.xz" in done.stdout
    assert [r["operation"] for r in map(json.loads, audit.read_text().splitlines())] == [
        "backup.create", "backup.prune"]
    restored = _backup(tmp_path, "restore", str(kept.path), "--target", str(tmp_path / "restored"))
    assert restored.returncode == 0, restored.stderr
    assert _tree(tmp_path / "restored" / "data") == _tree(data)


def test_systemd_and_cron_start_the_same_nightly_job():
    service = (NIGHTLY / "sales-engine-backup.service").read_text()
    timer = (NIGHTLY / "sales-engine-backup.timer").read_text()
    [cron] = [line for line in (NIGHTLY / "crontab").read_text().splitlines() if line[:1].isdigit()]
    assert "ExecStart=/opt/sales-engine/cluster/backup/nightly-backup.sh" in service
    assert "Type=oneshot" in service and "UMask=0027" in service
    assert "OnCalendar=*-*-* 02:30:00" in timer and "Persistent=true" in timer
    minute, hour, *_ = cron.split()
    assert (minute, hour) == ("30", "2") and "/opt/sales-engine/cluster/backup/nightly-backup.sh" in cron
    for variable in ("ENGINE=/opt/sales-engine/.venv/bin/engine", "CONFIG=/etc/sales-engine/backup.yaml"):
        assert f"Environment={variable}" in service and variable in cron
    assert os.access(NIGHTLY / "nightly-backup.sh", os.X_OK)


# --- restore: malformed archives are backup errors (exit 8), never "unexpected error" ---

def _forged_archive(path: Path, manifest_sources: list[str], members: list[tuple[tarfile.TarInfo, bytes | None]]
                    ) -> None:
    """An archive in the engine's format, manifest and checksum consistent with `members`,
    whose manifest names the sources `manifest_sources` (possibly the same one twice)."""
    files = [{"path": m.name, "size": len(c), "sha256": hashlib.sha256(c).hexdigest()}
             for m, c in members if c is not None]
    manifest = {"format": FORMAT, "created": "2024-01-01T00:00:00Z", "compression": "gzip",
                "sources": [{"name": name, "path": f"/srv/{name}", "files": len(files), "bytes": 0, "sha256": ""}
                            for name in manifest_sources],
                "folders": sorted(set(manifest_sources)), "files": files}
    data = json.dumps(manifest).encode()
    head = tarfile.TarInfo(MANIFEST_NAME)
    head.size = len(data)
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(head, io.BytesIO(data))
        for name in sorted(set(manifest_sources)):
            folder = tarfile.TarInfo(name)
            folder.type = tarfile.DIRTYPE
            archive.addfile(folder)
        for member, content in members:
            archive.addfile(member, io.BytesIO(content) if content is not None else None)
    _rewrite_checksum(path)


def _pax_file(name: str, content: bytes, **pax: str) -> tuple[tarfile.TarInfo, bytes]:
    member = tarfile.TarInfo(name)
    member.size = len(content)
    member.pax_headers = dict(pax)
    return member, content


@pytest.mark.parametrize("case", ["source named twice", "pax mtime 1e300", "pax mtime nan", "pax mtime negative"])
def test_a_malformed_archive_is_a_backup_error_and_restores_nothing(tmp_path, case):
    archive = tmp_path / "backups" / "backup-20240101T000000Z.tar.gz"
    archive.parent.mkdir()
    if case == "source named twice":
        _forged_archive(archive, ["output", "output"], [_pax_file("output/a.csv", b"a\n")])
    else:
        mtime = {"pax mtime 1e300": "1e300", "pax mtime nan": "nan", "pax mtime negative": "-1e300"}[case]
        _forged_archive(archive, ["output"], [_pax_file("output/a.csv", b"a\n", mtime=mtime)])
    target = tmp_path / "restore" / "target"
    before = _tree(tmp_path)

    done = _backup(tmp_path, "restore", archive.name, "--target", str(target))
    assert done.returncode == 8, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {archive}: ") and "unexpected" not in line
    assert _tree(tmp_path) == before and not (tmp_path / "restore").exists()
    verified = _backup(tmp_path, "verify", archive.name)
    assert verified.returncode == 8, verified.stdout + verified.stderr


def test_a_backup_of_an_output_folder_holds_the_published_files_and_restores_into_a_usable_folder(tmp_path):
    from conftest import PUBLISHED_FILES, published_bytes, run_engine

    data = write_csv(tmp_path / "days" / "sales.csv", [("2024-01-01", "P1", "1.00", "C1"), ("2024-01-02", "P2", "2.00", "")])
    output = tmp_path / "output"
    run_engine(data.parent, output)  # a folder input: the output folder has an incremental state
    run_engine(data.parent, output)
    assert (output / ".state" / "partials").is_dir()
    expected = published_bytes(output)
    done = _backup(tmp_path, "create", str(output))
    assert done.returncode == 0, done.stderr
    archive = _only_archive(tmp_path)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {f"output/{name}" for name in PUBLISHED_FILES} <= names
    assert not [n for n in names if n.split("/")[1:2] in ([".runs"], [".current"], [".previous"], [".lock"], [".state"])]
    restored = tmp_path / "restored"
    done = _backup(tmp_path, "restore", archive.name, "--target", str(restored))
    assert done.returncode == 0, done.stderr
    assert published_bytes(restored / "output") == expected
    run_engine(data.parent, restored / "output")  # the restored (plain) files are taken over by the next run
    assert published_bytes(restored / "output") == expected
    assert (restored / "output" / "report.html").is_symlink()
