"""The container image (cluster/container/, docs/container.md), built with `make image` and
run for real with podman: the engine in a container against the same run outside it, a
scheduler and two workers in containers on a podman network (plain and TLS), and what the
layers of the saved archive hold.

`make image` installs podman and the rest as root when they are missing, and reuses an
image built from the same sources. Everything a test starts is labelled with its own token
and removed when it ends, network included; the test checks that nothing is left.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
import uuid
from pathlib import Path

import pytest

from conftest import PUBLISHED_FILES, TlsFiles, published_bytes, run_cli

pytestmark = pytest.mark.timeout(1800)  # a first build takes minutes

ROOT = Path(__file__).resolve().parents[1]
PODMAN = ROOT / "cluster" / "container" / "podman.sh"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"registry.example.com/sales-engine:{VERSION}"
ARCHIVE = ROOT / "build" / f"sales-engine-{VERSION}.oci.tar"
IMAGE_USER = "10001:10001"
MAX_IMAGE_BYTES = 600_000_000
DEMO_ROWS = 200_000  # what `make demo` generates


def podman(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["bash", str(PODMAN), *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"podman {' '.join(args)} -> {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def make_image(timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "image"], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    if os.geteuid() != 0 and shutil.which("podman") is None:
        pytest.skip("the container tests need podman: `make image` installs it only as root, and this is neither")
    done = make_image()
    assert done.returncode == 0, f"make image failed\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    assert done.stdout.strip().splitlines()[-1] == IMAGE
    return IMAGE


class Containers:
    """Containers and one network, all labelled with a token, removed by `close`."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex[:10]
        self.label = f"sales-engine-test={self.token}"
        self.network: str | None = None

    def name(self, role: str) -> str:
        return f"se-{self.token}-{role}"

    def create_network(self) -> str:
        # internal: the containers reach each other and nothing beyond the bridge
        self.network = f"se-{self.token}"
        podman("network", "create", "--internal", "--label", self.label, self.network)
        return self.network

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        """`podman run --rm` in the foreground."""
        return podman("run", "--rm", "--label", self.label, *args, timeout=timeout, check=check)

    def start(self, role: str, *args: str) -> str:
        """`podman run -d`: a named container in the background."""
        podman("run", "-d", "--name", self.name(role), "--label", self.label, *args)
        return self.name(role)

    def wait_for_log(self, role: str, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            logs = podman("logs", self.name(role), check=False)
            if text in logs.stdout + logs.stderr:
                return
            state = podman("inspect", "--format", "{{.State.Running}}", self.name(role), check=False).stdout.strip()
            assert state == "true", f"{role} exited:\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}"
            time.sleep(0.5)
        raise AssertionError(f"{role} did not log {text!r} within {timeout} s")

    def left(self) -> list[str]:
        return podman("ps", "-a", "--filter", f"label={self.label}", "--format", "{{.Names}}").stdout.split()

    def close(self) -> None:
        names = self.left()
        if names:
            podman("rm", "--force", "--time", "5", *names, check=False, timeout=120)
        if self.network:
            podman("network", "rm", "--force", self.network, check=False)
        assert not self.left(), "containers left running"
        if self.network:
            assert podman("network", "exists", self.network, check=False).returncode != 0, "network left"


@pytest.fixture
def containers():
    group = Containers()
    try:
        yield group
    finally:
        group.close()


def source_hash(image_name: str) -> str:
    return podman("image", "inspect", "--format", '{{index .Labels "sales-engine.source-hash"}}', image_name).stdout.strip()


def owners(folder: Path) -> set[tuple[int, int]]:
    found = set()
    for directory, subdirectories, files in os.walk(folder):
        for name in [".", *subdirectories, *files]:
            status = os.lstat(Path(directory) / name)
            found.add((status.st_uid, status.st_gid))
    return found


def package_versions(freeze: str) -> dict[str, str]:
    pairs = (line.split("==", 1) for line in freeze.splitlines() if "==" in line)
    return {name.lower().replace("_", "-"): version for name, version in pairs}


def host_freeze() -> str:
    return subprocess.run([sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True).stdout


def version_drift(image_name: str) -> str:
    """Packages whose versions differ between this environment and the image (for messages)."""
    inside = package_versions(podman("run", "--rm", image_name, "cat", "/opt/venv/requirements.lock").stdout)
    here = package_versions(host_freeze())
    return ", ".join(f"{name} {here[name]} here, {inside[name]} in the image"
                     for name in sorted(inside) if name in here and here[name] != inside[name]) or "none"


# --- the image ---------------------------------------------------------------------------

@pytest.mark.slow
def test_image_is_small_non_root_with_tini_and_the_cluster_commands(image):
    config = json.loads(podman("image", "inspect", image).stdout)[0]
    assert config["Config"]["User"] == IMAGE_USER
    assert config["Config"]["Entrypoint"] == ["/usr/bin/tini", "--"]
    assert config["Size"] <= MAX_IMAGE_BYTES, f"{config['Size'] / 1e6:.0f} MB"
    assert config["Labels"]["org.opencontainers.image.version"] == VERSION

    assert podman("run", "--rm", image, "engine", "--version").stdout.strip() == f"engine {VERSION}"
    checks = podman("run", "--rm", image, "sh", "-c",
                    "id -u; cat /proc/1/comm; dask scheduler --help >/dev/null && dask worker --help >/dev/null && echo dask; "
                    "python -c 'import importlib.util as u; print(sorted(m for m in (\"pytest\", \"hypothesis\", "
                    "\"duckdb\", \"polars\", \"matplotlib\", \"moto\", \"pip\", \"setuptools\", \"psycopg\") if u.find_spec(m)))'; "
                    "python -c 'import s3fs, adbc_driver_postgresql, cryptography; print(\"extras\")'").stdout.split("\n")
    assert checks[:5] == ["10001", "tini", "dask", "[]", "extras"], checks

    # `make image` again: the same sources, nothing built (unless someone changed them since)
    started = time.monotonic()
    again = make_image()
    assert again.returncode == 0, again.stderr[-3000:]
    if "is up to date" in again.stderr:
        assert time.monotonic() - started < 60
    else:
        assert source_hash(image) != config["Labels"]["sales-engine.source-hash"], again.stderr[-3000:]
        config = json.loads(podman("image", "inspect", image).stdout)[0]

    # The archive is this image.
    with tarfile.open(ARCHIVE) as archive:
        index = json.load(archive.extractfile("index.json"))
        (entry,) = index["manifests"]
        assert entry["annotations"]["org.opencontainers.image.ref.name"] == image
        manifest = json.load(archive.extractfile(f"blobs/sha256/{entry['digest'].split(':')[1]}"))
    assert manifest["config"]["digest"] == f"sha256:{config['Id']}"


@pytest.mark.slow
def test_a_demo_sized_run_in_the_container_matches_one_outside(image, tmp_path):
    """`make demo` in the container, as the calling user, with the data folder mounted at
    the same path (the quarantine records each row's file path)."""
    work = tmp_path / "demo"
    work.mkdir()
    uid, gid = os.getuid(), os.getgid()
    as_caller = ["--user", f"{uid}:{gid}", "--network", "none", "-v", f"{work}:{work}", "-w", str(work)]
    generated = podman("run", "--rm", *as_caller, image, "engine", "generate", f"{work}/sales.csv",
                       "--rows", str(DEMO_ROWS), "--seed", "42", timeout=300)
    ran = podman("run", "--rm", *as_caller, image, "engine", "run", f"{work}/sales.csv",
                 "--output", f"{work}/output", timeout=600)
    assert "high_null_count" in ran.stdout + ran.stderr  # the demo's dirty rows, as README says

    outside = tmp_path / "outside"
    done = run_cli("generate", str(outside / "sales.csv"), "--rows", str(DEMO_ROWS), "--seed", "42")
    assert done.returncode == 0, done.stderr
    assert (outside / "sales.csv").read_bytes() == (work / "sales.csv").read_bytes(), generated.stderr
    done = run_cli("run", str(work / "sales.csv"), "--output", str(outside / "output"))
    assert done.returncode == 0, done.stderr

    inside, here = published_bytes(work / "output"), published_bytes(outside / "output")
    differ = [name for name in PUBLISHED_FILES if inside[name] != here[name]]
    assert not differ, f"{differ} differ; package versions that differ: {version_drift(image)}"
    reports = [json.loads((folder / "run_report.json").read_text()) for folder in (work / "output", outside / "output")]
    assert reports[0]["mode"] == reports[1]["mode"] == "pandas"
    assert reports[0]["rows"] == reports[1]["rows"]
    assert owners(work) == {(uid, gid)}


@pytest.mark.slow
def test_any_non_root_uid_can_run_it(image, tmp_path):
    """`--user "$(id -u):$(id -g)"` for a user other than the image's own: the engine
    keeps its audit log under a home every uid can write, and writes as that uid."""
    uid, gid = (os.getuid(), os.getgid()) if os.getuid() != 0 else (4242, 4242)
    work = tmp_path / "someone"
    work.mkdir()
    if os.getuid() == 0:
        os.chown(work, uid, gid)
    podman("run", "--rm", "--user", f"{uid}:{gid}", "--network", "none", "-v", f"{work}:{work}", image, "sh", "-c",
           f"engine generate {work}/sales.csv --rows 5000 --seed 3 && engine run {work}/sales.csv --output {work}/out "
           "&& test -s $HOME/.local/state/sales-engine/audit.jsonl")
    assert owners(work) == {(uid, gid)}


# --- a cluster of containers ---------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["tcp", "tls"])
def test_scheduler_and_workers_in_containers_give_the_bytes_of_pandas_mode(image, tmp_path, containers, protocol):
    from engine.sources.generate import generate_sales

    data, out = tmp_path / "in", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    out.chmod(0o777)  # written by the image's user
    generate_sales(data / "sales.csv", 60_000, seed=11)
    data.chmod(0o755)
    (data / "sales.csv").chmod(0o644)
    mounts = ["-v", f"{data}:/data/in:ro", "-v", f"{out}:/data/out"]
    tls_args: list[str] = []
    tls_env: list[str] = []
    if protocol == "tls":  # the TLS tests' throw-away CA, readable by the image's user
        tls = TlsFiles(tmp_path / "tls")
        for path in (tls.ca, tls.cert, tls.key):
            path.chmod(0o644)
        (tmp_path / "tls").chmod(0o755)
        mounts += ["-v", f"{tmp_path / 'tls'}:/tls:ro"]
        tls_args = ["--tls-ca-file", "/tls/ca.pem", "--tls-cert", "/tls/cert.pem", "--tls-key", "/tls/key.pem"]
        tls_env = ["-e", "ENGINE__CLUSTER__TLS=files", "-e", "ENGINE__CLUSTER__TLS_CA_FILE=/tls/ca.pem",
                   "-e", "ENGINE__CLUSTER__TLS_CERT=/tls/cert.pem", "-e", "ENGINE__CLUSTER__TLS_KEY=/tls/key.pem"]

    network = containers.create_network()
    scheduler = containers.name("scheduler")
    address = f"{protocol}://{scheduler}:8786"
    containers.start("scheduler", "--network", network, *mounts, image, "dask", "scheduler", "--host", scheduler,
                     "--port", "8786", "--no-dashboard", "--protocol", protocol, *tls_args)
    containers.wait_for_log("scheduler", "Scheduler at:")
    for worker in ("worker-1", "worker-2"):
        containers.start(worker, "--network", network, *mounts, image, "dask", "worker", address, "--name", worker,
                         "--host", containers.name(worker), "--nthreads", "1", "--memory-limit", "1GiB", "--no-dashboard",
                         "--local-directory", "/tmp/dask", *tls_args)
    for worker in ("worker-1", "worker-2"):
        containers.wait_for_log(worker, "Registered to:")
    for role in ("scheduler", "worker-1", "worker-2"):  # no process in them runs as root
        users = podman("top", containers.name(role), "huser").stdout.split()[1:]
        assert users and set(users) == {"10001"}, (role, users)

    # The fourth container: the engine as a client of that cluster.
    run = containers.run("--name", containers.name("client"), "--network", network, *mounts, *tls_env, image,
                         "engine", "run", "/data/in/sales.csv", "--output", "/data/out/distributed",
                         "--mode", "distributed", "--scheduler", address, "--partition-size", "256KiB", timeout=600)
    report = json.loads((out / "distributed" / "run_report.json").read_text())
    assert report["mode"] == "distributed" and report["backend"]["scheduler"] == address, run.stderr[-2000:]
    assert report["backend"]["workers"] == 2
    assert report["backend"]["tls"] == ("files" if protocol == "tls" else "off")

    if protocol == "tls":  # a client without the cluster's certificate is refused
        refused = containers.run("--network", network, image, "python", "-c",
                                 f"from distributed import Client; Client('tcp://{scheduler}:8786', timeout=5)",
                                 check=False, timeout=120)
        assert refused.returncode != 0

    containers.run("--network", "none", *mounts, image, "engine", "run", "/data/in/sales.csv",
                   "--output", "/data/out/pandas", "--mode", "pandas")
    distributed, pandas = published_bytes(out / "distributed"), published_bytes(out / "pandas")
    assert [name for name in PUBLISHED_FILES if distributed[name] != pandas[name]] == []


# --- what the layers hold ----------------------------------------------------------------------

PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")
PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{64,}-----END")


SECRET_FILE_NAMES = {"pip.conf", "pip.ini", ".pypirc", ".netrc", ".git-credentials", "credentials", "id_rsa",
                     "id_ecdsa", "id_ed25519", "host-ca.crt", "ca.crt"}


def public_certificates() -> set[bytes]:
    """The public CA set as Debian's ca-certificates installs it on this host."""
    found = set()
    for path in Path("/usr/share/ca-certificates").rglob("*.crt"):
        found |= certificate_bodies(path.read_bytes())
    return found


def certificate_bodies(text: bytes) -> set[bytes]:
    return {re.sub(rb"\s", b"", body) for body in PEM_CERTIFICATE.findall(text)}


def layer_files(archive: tarfile.TarFile, manifest: dict):
    """(layer number, member, content or None) for every entry of every layer."""
    for number, layer in enumerate(manifest["layers"]):
        blob = archive.extractfile(f"blobs/sha256/{layer['digest'].split(':')[1]}")
        with tarfile.open(fileobj=blob, mode="r|*") as tar:
            for member in tar:
                content = tar.extractfile(member).read() if member.isfile() and member.size < 64_000_000 else None
                yield number, member, content


@pytest.mark.slow
def test_no_secret_package_index_or_host_certificate_in_any_layer(image):
    host_bundle_path = Path("/etc/ssl/certs/ca-certificates.crt")
    host_bundle = host_bundle_path.read_bytes() if host_bundle_path.is_file() else b""
    host_certificates = certificate_bodies(host_bundle)
    found: dict[bytes, list[str]] = {}
    image_bundle: set[bytes] = set()
    problems = []
    with tarfile.open(ARCHIVE) as archive:
        (entry,) = json.load(archive.extractfile("index.json"))["manifests"]
        manifest = json.load(archive.extractfile(f"blobs/sha256/{entry['digest'].split(':')[1]}"))
        config = json.load(archive.extractfile(f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}"))
        for number, member, content in layer_files(archive, manifest):
            name = member.name.removeprefix("./")
            where = f"layer {number}: {name}"
            if name.startswith(("run/build", "tmp/", "src/")) or Path(name).name in SECRET_FILE_NAMES:
                problems.append(f"{where}: left by the build, or a credentials file")
            if content is None:
                continue
            if host_bundle and content == host_bundle:
                problems.append(f"{where}: the host's CA bundle")
            if PEM_PRIVATE_KEY.search(content) and not content.startswith(b"\x7fELF"):
                problems.append(f"{where}: a private key")  # (libraries hold self-test vectors: gnutls)
            if b"-----BEGIN CERTIFICATE-----" in content:
                bodies = certificate_bodies(content)
                if name == "etc/ssl/certs/ca-certificates.crt":
                    image_bundle |= bodies  # Debian's public set, from the ca-certificates package
                for body in bodies & host_certificates:
                    found.setdefault(body, []).append(where)
    # certificates this host trusts beyond the public sets (a local CA, a proxy's) are nowhere
    host_only = host_certificates - image_bundle - public_certificates()
    problems += [f"{where}: a certificate only the host trusts" for body in host_only for where in found.get(body, [])]
    history = json.dumps(config.get("history", [])) + json.dumps(config["config"])
    problems += [f"image history or config mentions {word!r}" for word in
                 ("/run/build", "pip.conf", "PIP_CERT", "PIP_INDEX", "/opt/pypi", "ca.crt") if word in history]
    assert image_bundle, "the image has no CA bundle of its own (ca-certificates)"
    assert not problems, "\n".join(problems[:50])
    assert config["config"]["User"] == IMAGE_USER


# --- without podman ---------------------------------------------------------------------------

def test_the_manifests_name_the_image_make_image_builds():
    import yaml

    def images(node) -> set[str]:
        if isinstance(node, dict):
            return {node["image"]} if "image" in node else set().union(*map(images, node.values()), set())
        return set().union(*map(images, node), set()) if isinstance(node, list) else set()

    named = [images(document) for path in sorted((ROOT / "cluster" / "kubernetes").glob("*.yaml"))
             for document in yaml.safe_load_all(path.read_text())]
    assert set().union(*named) == {IMAGE}


def test_the_build_sees_the_hosts_package_index_through_mounts_only(tmp_path):
    """pip-mounts.py: the host's index settings for the build, local folders mounted under
    /run/build-index, the CA bundle copied for the mount, client certificates left out."""
    index, wheels, bundle = tmp_path / "pypi", tmp_path / "wheels", tmp_path / "bundle.pem"
    (index / "simple").mkdir(parents=True)
    wheels.mkdir()
    bundle.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    listing = "\n".join([
        "global.index-url='https://user:secret@pypi.mycorp.example/simple'",
        f"global.extra-index-url='file://{index}/simple https://mirror.example/simple'",
        f"global.find-links='{wheels}'",
        "global.cert='/nonexistent.pem'",
        f":env:.cert='{bundle}'",
        "global.client-cert='/etc/pip/client.pem'",
        "global.constraint='/etc/constraints.txt'",
    ])
    folder = tmp_path / "pip"
    done = subprocess.run([sys.executable, str(ROOT / "cluster" / "container" / "pip-mounts.py"), str(folder)],
                          input=listing, capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [f"{tmp_path}/pypi:/run/build-index/1", f"{wheels}:/run/build-index/2"]
    assert (folder / "pip.conf").read_text().splitlines() == [
        "[global]",
        "index-url = https://user:secret@pypi.mycorp.example/simple",
        "extra-index-url = file:///run/build-index/1/simple https://mirror.example/simple",
        "find-links = /run/build-index/2",
        "cert = /run/build/ca.crt",
    ]
    assert (folder / "ca.crt").read_bytes() == bundle.read_bytes()
