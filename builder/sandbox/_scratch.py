"""Between two programs, inside the sandbox: empty the scratch directories and look for what a
program can leave behind. Stdlib only; imported by `_worker.py` (see there)."""

import os
import shutil

SCRATCH_DIRS = ("/tmp", "/dev/shm")


def wipe(keep=()):
    """Empty /tmp and /dev/shm, but for the read-only mounts in `keep` (an environment that lives
    under /tmp) and the directories that lead to them; False if something could not be removed."""
    keep, leads = set(keep), set()
    for path in keep:
        while (path := os.path.dirname(path)) not in ("/", *SCRATCH_DIRS):
            leads.add(path)
    for root in SCRATCH_DIRS:
        # The program may have taken the permissions away from its directories: give them back
        # top-down (os.walk lists a directory only after the loop body saw its name).
        for dirpath, dirnames, _ in os.walk(root):
            dirnames[:] = [name for name in dirnames if os.path.join(dirpath, name) not in keep]
            for name in dirnames:
                try:
                    os.chmod(os.path.join(dirpath, name), 0o700)
                except OSError:
                    pass
    left = [_empty(root, keep, leads) for root in SCRATCH_DIRS]  # both, whatever the first says
    return not any(left)


def _empty(directory, keep, leads):
    """Remove what `directory` holds but `keep` and `leads`; True if something is left."""
    left = False
    for entry in os.scandir(directory):
        if entry.path in keep:
            continue
        if entry.path in leads and entry.is_dir(follow_symlinks=False):
            left = _empty(entry.path, keep, leads) or left
        elif entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass
    return left or any(e.path not in keep | leads for e in os.scandir(directory))


def ipc_left():
    """SysV IPC objects outlive their processes; their presence means: recycle the sandbox."""
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                if len(fh.readlines()) > 1:
                    return True
        except OSError:
            pass
    return False
