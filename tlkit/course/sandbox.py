"""Run untrusted code with least privilege: the sandbox ``tlkit grade`` and ``tlkit check`` run notebooks in.

A submitted notebook is somebody else's program. It runs here inside Linux namespaces, the same
kernel features containers are built from (no container engine needed):

- **a mount namespace with a new root** that holds only what a Python kernel needs, read-only:
  the system's ``/usr``, ``/lib`` and ``/etc``, Python, the virtual environment, tlkit's *library*
  (its exercise checks and quiz keys are replaced by empty folders) and the data cache. Nothing of
  the instructor's home, the course sources, the solutions or the other submissions exists in it.
  The only writable places are a size-capped in-memory home, ``/tmp`` and ``/dev/shm``;
- **a PID namespace**: the notebook's processes see only each other. They cannot find, signal or
  read the grader (``/proc`` shows only the sandbox). When the sandbox's first process ends, the
  kernel of the OS kills every process left in it, ``setsid`` daemons included;
- **a network namespace** with only its own loopback: no network, and no way to reach another
  sandbox's kernel;
- **no privileges**: run as root, the grader puts each sandbox under its own unused user id, with a
  memory cgroup (counting all memory: heap, ``MAP_SHARED``, tmpfs) and a process limit. Run as a
  normal user, it uses an unprivileged user namespace, drops every capability and limits address
  space (``RLIMIT_AS``) instead of a cgroup.

Where namespaces are not available (macOS, Windows, containers that forbid them) the sandbox falls
back to a process group with resource limits: that protects against accidents (hangs, floods,
crashes) but not against a determined attack. ``protections(mode)`` says what holds, and
``exercises/README.md`` has the table. ``TLKIT_SANDBOX=processes`` forces the fallback.

The boot code at the bottom of this file runs *inside* the new namespaces but before any untrusted
code: it builds the new root, enters it, drops privileges and only then starts the program.
"""
from __future__ import annotations

import base64
import ctypes
import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

WORKDIR = "/home/learner"   # the sandbox's home and working directory
ROOT_UID_BASE = 3_000_000   # root mode: each sandbox runs as a random uid above this (ids no account uses)

NAMESPACES_ROOT = "namespaces (root)"
NAMESPACES_USER = "namespaces (user)"
PROCESSES = "processes"


@dataclass
class Limits:
    """What one sandbox may use. ``memory`` covers every process in it (bytes)."""
    memory: int = 6 * 2**30
    processes: int = 512
    disk: int = 1 * 2**30       # the writable in-memory folders together (bytes)
    open_files: int = 4096


def protections(mode: str) -> list[str]:
    """What a submission cannot do in ``mode``, in the words of the instructor's README."""
    common = ["a time limit per cell and per notebook", "capped output"]
    if mode == PROCESSES:
        return common + ["an address-space limit per process (RLIMIT_AS, Linux)",
                         "its processes are killed at the end (process group; on Linux also any process "
                         "carrying the sandbox's token)",
                         "NOT protected: it runs as your user, can read your files and reach the network"]
    ns = ["no network", "no view of the grader, other submissions or the course sources (new root)",
          "every process it starts is gone when its run ends (PID namespace)", "no privileges"]
    if mode == NAMESPACES_ROOT:
        return common + ns + ["its own user id", "memory counted by a cgroup (all kinds)", "a process limit"]
    return common + ns + ["an address-space limit per process (RLIMIT_AS)"]


# ---------------------------------------------------------------- choosing a mode

@functools.lru_cache(maxsize=1)
def detect_mode() -> str:
    """The strongest sandbox this machine allows: tried once with a real (tiny) sandboxed run."""
    forced = os.environ.get("TLKIT_SANDBOX", "").strip().lower()
    if forced == PROCESSES:
        return PROCESSES
    if not sys.platform.startswith("linux") or not shutil.which("unshare"):
        return PROCESSES
    mode = NAMESPACES_ROOT if os.geteuid() == 0 else NAMESPACES_USER
    try:
        box = Sandbox(Limits(memory=2 * 2**30), mode=mode)
        try:
            proc = box.start([sys.executable, "-I", "-c", "import json, os; print(os.getpid())"],
                             stdout=subprocess.PIPE)
            out, _ = proc.communicate(timeout=60)
            ok = proc.returncode == 0 and out.strip() == b"1"
        finally:
            box.close()
    except (OSError, subprocess.SubprocessError):
        ok = False
    if ok:
        return mode
    if forced == "namespaces":
        raise RuntimeError("TLKIT_SANDBOX=namespaces, but a sandbox could not be started here "
                           "(are user namespaces allowed? try `unshare --user --map-root-user true`)")
    return PROCESSES


# ---------------------------------------------------------------- the grader's side

def _readable_paths() -> list[str]:
    """What a Python kernel with tlkit needs to see, read-only."""
    import site

    import tlkit
    from .. import models, paths

    wanted = {"/usr", "/etc", "/opt"}
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        wanted.add(name)  # symlinks into /usr on merged-usr systems are re-created as symlinks
    wanted |= {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
               str(Path(sys.executable).resolve().parent.parent)}
    wanted |= set(site.getsitepackages()) | {str(Path(tlkit.__file__).resolve().parent)}
    for optional in (paths.data_dir(), models.timm_cache_dir()):
        wanted.add(str(optional))
    return sorted(p for p in wanted if os.path.lexists(p))


def hidden_paths() -> list[str]:
    """The parts of tlkit a submission must not see: the exercises' judges and the quiz keys."""
    import importlib.util

    spec = importlib.util.find_spec("tlkit.course.checks")
    found = list(spec.submodule_search_locations or []) if spec else []
    quizzes = Path(__file__).resolve().parent / "quizzes"
    return sorted({str(Path(p).resolve()) for p in found} | ({str(quizzes)} if quizzes.is_dir() else set()))


def sandbox_env(extra: dict | None = None) -> dict:
    """A small, fixed environment: nothing of the grader's own variables leaks in."""
    from .. import paths

    venv_bin = str(Path(sys.prefix) / "bin")
    env = {"PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": WORKDIR, "USER": "learner",
           "LOGNAME": "learner", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TMPDIR": "/tmp",
           "TLKIT_HOME": f"{WORKDIR}/.cache/tlkit", "TLKIT_DATA": str(paths.data_dir()), "TLKIT_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1",
           "PYDEVD_DISABLE_FILE_VALIDATION": "1", "JUPYTER_PLATFORM_DIRS": "1"}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TORCH_HOME"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra or {})
    return env


@dataclass
class Sandbox:
    """One sandbox: ``start`` a program in it, ``kill`` everything in it, ``close`` to clean up.

    ``files`` are written into its working directory (``/home/learner``) before the program starts.
    Run as root, each sandbox gets a user id of its own, drawn at random, so two sandboxes (of one
    grading run or of two) never share one.
    """
    limits: Limits = field(default_factory=Limits)
    files: dict[str, bytes] = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    mode: str | None = None
    readable: list[str] | None = None
    hidden: list[str] | None = None

    def __post_init__(self):
        self.mode = self.mode or detect_mode()
        self.token = base64.b32encode(os.urandom(10)).decode().lower()
        self.private = Path(tempfile.mkdtemp(prefix="tlkit-sandbox-"))  # 0700: only the grader's user
        self.proc: subprocess.Popen | None = None
        self.cgroups: list[Path] = []
        self.started = 0.0

    # what a run looks like from outside
    def start(self, argv: list[str], pass_fds: tuple[int, ...] = (), stdout=subprocess.DEVNULL) -> subprocess.Popen:
        env = sandbox_env({**self.env, "TLKIT_SANDBOX_TOKEN": self.token, "TLKIT_SANDBOX_MODE": self.mode})
        self.started = time.monotonic()
        if self.mode == PROCESSES:
            return self._start_processes(argv, env, pass_fds, stdout)
        spec = {"root": str(self.private / "root"), "readable": self.readable or _readable_paths(),
                "hidden": self.hidden if self.hidden is not None else hidden_paths(),
                "files": {name: base64.b64encode(data).decode() for name, data in self.files.items()},
                "env": env, "argv": argv, "disk": self.limits.disk, "keep_fds": list(pass_fds),
                "uid": ROOT_UID_BASE + secrets.randbelow(10**9) if self.mode == NAMESPACES_ROOT else None,
                "cgroups": [], "rlimits": self._rlimits()}
        if self.mode == NAMESPACES_ROOT:
            self.cgroups = _make_cgroups(f"tlkit-{self.token}", self.limits)
            spec["cgroups"] = [str(c / "cgroup.procs") for c in self.cgroups]
            if self.cgroups:
                spec["rlimits"].pop("AS", None)  # the cgroup counts every kind of memory instead
        (self.private / "root").mkdir()
        spec_path = self.private / "spec.json"
        spec_path.write_text(json.dumps(spec))
        flags = ["--mount", "--pid", "--fork", "--kill-child", "--net", "--ipc", "--uts"]
        if self.mode == NAMESPACES_USER:
            flags = ["--user", "--map-root-user"] + flags
        boot = [shutil.which("unshare"), *flags, "--", sys.executable, "-I", "-m", "tlkit.course.sandbox",
                str(spec_path)]
        self.proc = subprocess.Popen(boot, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.DEVNULL,
                                     pass_fds=pass_fds, start_new_session=True)
        return self.proc

    def _rlimits(self) -> dict:
        limits = {"CORE": 0, "NOFILE": self.limits.open_files, "FSIZE": self.limits.disk, "AS": self.limits.memory}
        if self.mode == NAMESPACES_ROOT:
            limits["NPROC"] = self.limits.processes  # counted per user id, and this id is the sandbox's own
        return limits

    def _start_processes(self, argv, env, pass_fds, stdout) -> subprocess.Popen:
        home = self.private / "home"
        home.mkdir()
        for name, data in self.files.items():
            (home / name).write_bytes(data)
        env = {**env, "HOME": str(home), "TLKIT_HOME": str(home / ".cache" / "tlkit"), "TMPDIR": str(home)}
        limits = json.dumps(self._rlimits())
        wrapped = [sys.executable, "-I", "-m", "tlkit.course.sandbox", "--limits", limits, "--", *argv]
        self.proc = subprocess.Popen(wrapped, cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=subprocess.DEVNULL, pass_fds=pass_fds, start_new_session=True)
        return self.proc

    def workdir(self) -> str:
        return WORKDIR if self.mode != PROCESSES else str(self.private / "home")

    def out_of_memory(self) -> bool:
        """Did the cgroup's memory limit stop something (root mode)?"""
        for group in self.cgroups:
            for name, key in (("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")):
                try:
                    for line in (group / name).read_text().splitlines():
                        word, _, value = line.partition(" ")
                        if word == key and int(value) > 0:
                            return True
                except (OSError, ValueError):
                    continue
            try:
                if int((group / "memory.failcnt").read_text()) > 0:
                    return True
            except (OSError, ValueError):
                pass
        return False

    def kill(self) -> None:
        """Kill everything in the sandbox, whatever state it is in."""
        if self.proc is None:
            return
        if self.mode == PROCESSES:
            with _suppress():
                os.killpg(self.proc.pid, signal.SIGKILL)
            _kill_tokened(self.token)
        else:
            with _suppress():
                os.killpg(self.proc.pid, signal.SIGKILL)  # unshare; --kill-child takes the PID namespace with it
            for group in self.cgroups:  # belt and braces: anything still counted in its cgroup
                _kill_cgroup(group)
        with _suppress():
            self.proc.wait(timeout=30)

    def close(self) -> None:
        self.kill()
        for group in self.cgroups:
            for _ in range(50):
                try:
                    group.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
        shutil.rmtree(self.private, ignore_errors=True)


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], (OSError, subprocess.SubprocessError))


def _kill_tokened(token: str) -> None:
    """Processes mode, Linux: kill any process whose environment carries this sandbox's token."""
    proc = Path("/proc")
    if not proc.is_dir():
        return
    needle = f"TLKIT_SANDBOX_TOKEN={token}".encode()
    for entry in proc.iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                continue


def _cgroup_roots() -> dict[str, Path]:
    """Where this machine's memory and pids controllers are mounted (cgroup v2, or v1 per controller)."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").is_file():
        return {"v2": base}
    roots = {}
    for controller in ("memory", "pids"):
        if (base / controller / "cgroup.procs").is_file():
            roots[controller] = base / controller
    return roots


def _make_cgroups(name: str, limits: Limits) -> list[Path]:
    """Root mode: a memory (+ swap) and process limit for one sandbox. Empty when cgroups are not writable."""
    roots, made = _cgroup_roots(), []
    try:
        if "v2" in roots:
            parent = roots["v2"] / "tlkit"
            parent.mkdir(exist_ok=True)
            with _suppress():
                (roots["v2"] / "cgroup.subtree_control").write_text("+memory +pids")
            with _suppress():
                (parent / "cgroup.subtree_control").write_text("+memory +pids")
            group = parent / name
            group.mkdir()
            made.append(group)
            (group / "memory.max").write_text(str(limits.memory))
            with _suppress():
                (group / "memory.swap.max").write_text("0")
            (group / "pids.max").write_text(str(limits.processes))
            return made
        if "memory" in roots:
            group = roots["memory"] / name
            group.mkdir()
            made.append(group)
            (group / "memory.limit_in_bytes").write_text(str(limits.memory))
            with _suppress():
                (group / "memory.memsw.limit_in_bytes").write_text(str(limits.memory))
        if "pids" in roots:
            group = roots["pids"] / name
            group.mkdir()
            made.append(group)
            (group / "pids.max").write_text(str(limits.processes))
        if not any(g.parent == roots.get("memory") for g in made):
            raise OSError("no memory controller")
        return made
    except OSError:
        for group in made:
            with _suppress():
                group.rmdir()
        return []


def _kill_cgroup(group: Path) -> None:
    try:
        pids = (group / "cgroup.procs").read_text().split()
    except OSError:
        return
    for pid in pids:
        with _suppress():
            os.kill(int(pid), signal.SIGKILL)


# ---------------------------------------------------------------- inside: the boot (trusted code)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21
MNT_DETACH = 2
PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 24, 28, 38, 47
PR_SET_DUMPABLE, PR_SET_PDEATHSIG = 4, 1
SECURE_NOROOT_AND_LOCKS = 0b1100_0011  # NOROOT, NOROOT_LOCKED, NO_CAP_AMBIENT_RAISE(+LOCKED)
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217, "armv7l": 218}

_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    _check(_c().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


def _locked_flags(path: str) -> int:
    """Flags a bind mount in a user namespace must keep (the original mount's nosuid/nodev/noexec/atime)."""
    st = os.statvfs(path).f_flag
    flags = 0
    for st_bit, ms_bit in ((1, MS_RDONLY), (2, MS_NOSUID), (4, MS_NODEV), (8, MS_NOEXEC), (1024, MS_NOATIME),
                           (2048, MS_NODIRATIME), (4096, MS_RELATIME)):
        if st & st_bit:
            flags |= ms_bit
    return flags


def _bind(source: str, root: str, *, read_only: bool = True, device: bool = False) -> None:
    target = root + source
    if os.path.islink(source) and not device:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            os.symlink(os.readlink(source), target)
        return
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "w").close()
    _mount(source, target, None, MS_BIND | MS_REC)
    flags = _locked_flags(source) | MS_BIND | MS_REMOUNT | MS_NOSUID | (MS_RDONLY if read_only else 0)
    if not device:
        flags |= MS_NODEV
    _mount(None, target, None, flags)


def _loopback_up() -> None:
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, request))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 0x1 | 0x40))  # SIOCSIFFLAGS: UP, RUNNING


def _set_rlimits(limits: dict) -> None:
    import resource

    for name, value in limits.items():
        with _suppress():
            resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (value, value))


def _drop_privileges(uid: int | None) -> None:
    libc = _c()
    if uid is not None:  # root mode: become a user id nothing else runs as; that drops every capability
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    else:                # user-namespace mode: stay "root" of the namespace, but with no capabilities at all
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text()) if Path(
            "/proc/sys/kernel/cap_last_cap").exists() else 40
        libc.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
        _check(libc.prctl(PR_SET_SECUREBITS, SECURE_NOROOT_AND_LOCKS, 0, 0, 0), "securebits")
        for cap in range(last + 1):
            _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop capability")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _boot(spec_path: str) -> None:
    """PID 1 of the new namespaces: build the root, enter it, drop privileges, exec the program."""
    spec = json.loads(Path(spec_path).read_text())
    for procs in spec["cgroups"]:  # join the cgroups first, while still privileged
        Path(procs).write_text("0")
    root = spec["root"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tlkit-sandbox", root, "tmpfs", MS_NOSUID | MS_NODEV, f"size={spec['disk']},mode=0755")
    for path in spec["readable"]:
        _bind(path, root)
    for path in spec["hidden"]:
        os.makedirs(root + path, exist_ok=True)
        _mount("hidden", root + path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k,mode=0555")
    os.makedirs(root + "/proc", exist_ok=True)
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(root + "/dev", exist_ok=True)
    _mount("dev", root + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        if os.path.exists(f"/dev/{node}"):
            _bind(f"/dev/{node}", root, read_only=False, device=True)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{root}/dev/{name}")
    uid = spec["uid"]
    for folder in ("/dev/shm", "/tmp", WORKDIR):
        os.makedirs(root + folder, exist_ok=True)
        os.chmod(root + folder, 0o1777 if folder != WORKDIR else 0o700)
    for name, data in spec["files"].items():
        Path(root + WORKDIR, name).write_bytes(base64.b64decode(data))
    if uid is not None:
        for dirpath, _, filenames in os.walk(root + WORKDIR):
            os.chown(dirpath, uid, uid)
            for f in filenames:
                os.chown(os.path.join(dirpath, f), uid, uid)
    _loopback_up()
    _c().sethostname(b"sandbox", 7)
    machine = os.uname().machine
    os.makedirs(root + "/.old", exist_ok=True)
    if machine in PIVOT_ROOT and _c().syscall(PIVOT_ROOT[machine], root.encode(), (root + "/.old").encode()) == 0:
        os.chdir("/")
        _check(_c().umount2(b"/.old", MNT_DETACH), "umount old root")
        os.rmdir("/.old")
    else:  # no pivot_root here: a chroot, safe because no capability survives the exec below
        os.chroot(root)
    os.chdir(WORKDIR)
    _drop_privileges(uid)
    _set_rlimits(spec["rlimits"])
    keep = set(spec["keep_fds"]) | {0, 1, 2}
    for fd in os.listdir("/proc/self/fd"):
        if int(fd) not in keep:
            with _suppress():
                os.close(int(fd))
    for fd in spec["keep_fds"]:
        os.set_inheritable(fd, True)
    os.execve(spec["argv"][0], spec["argv"], spec["env"])


def _processes_fallback(limits: str, argv: list[str]) -> None:
    """Processes mode: limits on this process (inherited by what it starts), then exec the program."""
    _set_rlimits(json.loads(limits))
    os.execv(argv[0], argv)


if __name__ == "__main__":
    if sys.argv[1] == "--limits":
        _processes_fallback(sys.argv[2], sys.argv[4:])
    else:
        _boot(sys.argv[1])
