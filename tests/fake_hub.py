"""A fake Hugging Face Hub HTTP server, for tests.

It speaks just enough of the Hub's HTTP API for the *real* `huggingface_hub` and `datasets`
clients to create repos, commit regular and LFS files, list refs, commits and trees, download
files and load parquet datasets. Everything lives in memory.

The clients read their configuration once, at import time, so point them at the server before
importing them: `os.environ.update(hub_env(url, home_dir))`.

Faults, for tests of a Hub that stalls or fails: `hub.fault("POST", r"/commit/", "stall")` makes
matching requests wait until `hub.clear_faults()` (before they change anything; "stall-after":
after the change is made, so the client never hears that it succeeded), and an HTTP status
("500") answers them with that error ("429:2": with `Retry-After: 2`), and "flip" flips one byte of the body it answers (a
download damaged on its way); `times` bounds how many requests are hit.

Uploads use the basic git-LFS transfer, never Xet: `huggingface_hub` uploads through Xet whenever
`hf_xet` is installed, without asking the server, unless `HF_HUB_DISABLE_XET=1` (set by `hub_env`).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import re
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

logger = logging.getLogger(__name__)

# Like the real Hub, preupload sends to LFS known binary formats, big files and binary content.
LFS_SUFFIXES = (".parquet", ".arrow", ".bin", ".safetensors", ".pt", ".pkl", ".zip", ".gz")
LFS_MIN_SIZE = 10 * 1024

# The `.gitattributes` that the Hub commits when it creates a repo (abridged).
GITATTRIBUTES = "".join(
    f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES
)

# API URLs name the repo type in the plural; file URLs prefix datasets and spaces, not models.
API_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}

_commit_counter = itertools.count()  # makes every commit id unique, even for identical content


def free_port() -> int:
    """A TCP port free right now, so the URL can be known before the server starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hub_env(url: str, home_dir: str | Path) -> dict[str, str]:
    """Environment variables pointing huggingface_hub and datasets at the fake Hub at `url`.

    Set them before importing either library. Caches go under `home_dir` so nothing leaks into
    the user's cache, and empty tokens hide any token from the user's environment.
    """
    home = Path(home_dir)
    return {
        "HF_ENDPOINT": url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_DATASETS_CACHE": str(home / "datasets"),
        "HF_TOKEN": "",
        "HUGGING_FACE_HUB_TOKEN": "",
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",  # the fake Hub only offers basic LFS transfers
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_SYMLINKS_WARNING": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }


class HubError(Exception):
    """An error answered like the Hub does, so `hf_raise_for_status` raises the right exception."""

    def __init__(self, status: int, message: str, code: str | None = None, headers=None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


def _status(action: str) -> tuple[str, str]:
    """"429:2" -> ("429", "2"): an HTTP status, and the Retry-After it sends (if any)."""
    status, _, wait = action.partition(":")
    return status, wait


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    data: bytes
    is_lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        """The LFS pointer file that git stores in place of an LFS file."""
        return (
            "version https://git-lfs.github.com/spec/v1\n"
            f"oid sha256:{self.sha256}\n"
            f"size {len(self.data)}\n"
        ).encode()

    @property
    def oid(self) -> str:
        """Git blob id; for LFS files git hashes the pointer."""
        content = self.pointer if self.is_lfs else self.data
        return _sha1(b"blob %d\0" % len(content) + content)

    @property
    def etag(self) -> str:
        """What /resolve and preupload report: sha256 for LFS files, git blob id otherwise."""
        return self.sha256 if self.is_lfs else self.oid

    def tree_entry(self, path: str) -> dict:
        size = len(self.data)
        entry = {"type": "file", "oid": self.oid, "size": size, "path": path}
        if self.is_lfs:
            entry["lfs"] = {"oid": self.sha256, "size": size, "pointerSize": len(self.pointer)}
        return entry


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    author: str
    date: str
    files: dict[str, Blob]  # full snapshot of the tree; never mutated once the commit exists

    def as_json(self) -> dict:
        authors = [{"user": self.author}]
        return {
            "id": self.oid,
            "title": self.title,
            "message": self.message,
            "authors": authors,
            "date": self.date,
        }


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str = field(default_factory=_now)
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def url_path(self) -> str:
        return URL_PREFIXES[self.repo_type] + self.repo_id

    def resolve(self, revision: str) -> Commit:
        """Branch, tag, full `refs/...` name or commit id -> commit."""
        for prefix, refs in (("refs/heads/", self.branches), ("refs/tags/", self.tags)):
            name = revision.removeprefix(prefix)
            if name in refs:
                return self.commits[refs[name]]
        if revision in self.commits:
            return self.commits[revision]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def add_commit(
        self, parent: str | None, files: dict[str, Blob], title: str, message="", author="system"
    ) -> Commit:
        date = _now()
        tree = sorted((path, blob.oid) for path, blob in files.items())
        oid = _sha1(
            json.dumps([self.repo_id, parent, title, date, next(_commit_counter), tree]).encode()
        )
        self.commits[oid] = Commit(oid, parent, title, message, author, date, files)
        return self.commits[oid]


@dataclass
class Request:
    method: str
    segments: list[str]  # URL path split on "/" then unquoted, so a quoted "%2F" stays inside
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    # Filled in by routing, for requests about a repo:
    repo_type: str = "model"
    repo_id: str = ""
    args: list[str] = field(default_factory=list)  # segments after the action, e.g. a revision

    @property
    def revision(self) -> str:
        return "/".join(self.args) or "main"

    def json(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from None

    def flag(self, name: str) -> bool:
        return self.query.get(name, ["false"])[0].lower() in ("1", "true")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json(obj, status: int = 200, headers: dict | None = None) -> Response:
    headers = {"Content-Type": "application/json", **(headers or {})}
    return Response(status, json.dumps(obj).encode(), headers)


def _directory_entry(path: str, files: dict[str, Blob]) -> dict:
    listing = sorted((p, b.oid) for p, b in files.items() if p.startswith(path + "/"))
    return {
        "type": "directory",
        "oid": _sha1(json.dumps(listing).encode()),
        "size": 0,
        "path": path,
    }


def _list_tree(files: dict[str, Blob], path: str, recursive: bool) -> list[dict]:
    """Entries under folder `path` ("" = root): children, or all descendants if `recursive`."""
    prefix = f"{path}/" if path else ""
    folders: set[str] = set()
    entries = []
    for file_path, blob in sorted(files.items()):
        if not file_path.startswith(prefix):
            continue
        parts = file_path[len(prefix) :].split("/")
        depth = len(parts) if recursive else 1
        folders.update(prefix + "/".join(parts[:i]) for i in range(1, min(depth + 1, len(parts))))
        if recursive or len(parts) == 1:
            entries.append(blob.tree_entry(file_path))
    return [_directory_entry(folder, files) for folder in sorted(folders)] + entries


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single `Range: bytes=...` header as an inclusive (start, end); None for the whole file."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    start, _, end = header.removeprefix("bytes=").partition("-")
    if not start:  # suffix range: the last `end` bytes
        return max(size - int(end), 0), size - 1
    return int(start), min(int(end), size - 1) if end else size - 1


@dataclass
class Fault:
    """What to do with requests whose method and path match (see the module docstring)."""

    method: str
    pattern: str  # a regex searched in the request's path
    action: str  # "stall", "stall-after", "flip", or an HTTP status such as "500"
    times: int | None  # None: every matching request
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if method != self.method or not re.search(self.pattern, path):
            return False
        return self.times is None or self.hits < self.times


class FakeHub:
    """In-memory Hub served over HTTP from a background thread. One user, one valid token."""

    def __init__(self, port: int = 0, token: str = "hf_fake_token", user: str = "tester"):
        self.token, self.user = token, user
        self.calls: list[str] = []  # "METHOD /path" of every request, for tests to inspect
        self._port = port
        self._lock = threading.Lock()  # held while a request reads or changes the state below
        self._repos: dict[tuple[str, str], Repo] = {}
        self._lfs_objects: dict[str, bytes] = {}  # sha256 -> content, filled by LFS uploads
        self._faults: list[Fault] = []
        self._release = threading.Event()  # set by clear_faults: stalled requests go on
        self.stalled = threading.Event()  # set when a request starts stalling
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> FakeHub:
        handler = type("BoundHandler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        self._server.daemon_threads = True  # idle keep-alive connections must not block stop()
        self._port = self._server.server_address[1]
        # A short poll interval makes stop() quick: shutdown() waits for the loop to notice.
        serve = {"target": self._server.serve_forever, "kwargs": {"poll_interval": 0.05}}
        self._thread = threading.Thread(**serve, name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None

    # ---- faults -----------------------------------------------------------------------------

    def fault(self, method: str, pattern: str, action: str, times: int | None = None) -> Fault:
        """Make requests `method` whose path matches `pattern` stall or fail (module docstring)."""
        if action not in ("stall", "stall-after", "flip") and not _status(action)[0].isdigit():
            raise ValueError(f"unknown fault action {action!r}")
        with self._lock:
            self._faults.append(Fault(method, pattern, action, times))
            return self._faults[-1]

    def clear_faults(self) -> None:
        """Remove every fault and let stalled requests go on (their clients have left)."""
        with self._lock:
            self._faults.clear()
            self._release.set()
            self._release = threading.Event()
            self.stalled.clear()

    def _take_fault(self, method: str, path: str) -> tuple[Fault | None, threading.Event]:
        with self._lock:
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault is not None:
                fault.hits += 1
                self.calls.append(f"{method} {path} [fault: {fault.action}]")
            return fault, self._release

    def _stall(self, release: threading.Event) -> None:
        self.stalled.set()
        release.wait()

    # ---- dispatch ---------------------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        path = "/" + "/".join(req.segments)
        fault, release = self._take_fault(req.method, path)
        if fault is not None and fault.action == "stall":
            self._stall(release)  # outside the lock: other requests go on meanwhile
        elif fault is not None and _status(fault.action)[0].isdigit():
            status, wait = _status(fault.action)
            message = f"Injected fault: HTTP {status}"
            headers = {"X-Error-Message": message, **({"Retry-After": wait} if wait else {})}
            return _json({"error": message}, int(status), headers)
        response = self._handle(req, path)
        if fault is not None and fault.action == "stall-after":
            self._stall(release)
        if fault is not None and fault.action == "flip" and response.body:
            body = bytearray(response.body)
            body[len(body) // 2] ^= 0xFF
            response.body = bytes(body)
        return response

    def _handle(self, req: Request, path: str) -> Response:
        try:
            # Requests are in-memory and quick: serialising them all keeps commits atomic.
            with self._lock:
                self.calls.append(f"{req.method} {path}")
                return self._route(req)
        except HubError as err:
            # Header values must be latin-1: the header stays ASCII, the body has the full text.
            message = err.message.encode("ascii", "replace").decode()
            headers = {"X-Error-Message": message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            return _json({"error": err.message}, err.status, headers)
        except (KeyError, TypeError, ValueError) as err:
            # Malformed payload. Not a 5xx: clients retry those for ~20 s before giving up.
            logger.exception("fake hub: bad request %s %s", req.method, path)
            return _json(
                {"error": f"Bad request: {err!r}"}, 400, {"X-Error-Message": "Bad request"}
            )

    def _route(self, req: Request) -> Response:
        seg, method = req.segments, req.method
        if seg[0] == "api":
            return self._route_api(req, seg[1:])
        if seg[0] == "_lfs" and len(seg) == 2 and method == "PUT":
            return self._lfs_upload(req, seg[1])
        # File URLs: /[datasets/|spaces/]{namespace}/{name}/...
        req.repo_type = {"datasets": "dataset", "spaces": "space"}.get(seg[0], "model")
        rest = seg if req.repo_type == "model" else seg[1:]
        if len(rest) == 6 and rest[2:] == ["info", "lfs", "objects", "batch"] and method == "POST":
            req.repo_id = f"{rest[0]}/{rest[1].removesuffix('.git')}"
            return self._lfs_batch(req)
        if len(rest) >= 5 and rest[2] == "resolve" and method in ("GET", "HEAD"):
            req.repo_id, req.args = f"{rest[0]}/{rest[1]}", rest[3:4]
            return self._resolve(req, "/".join(rest[4:]))
        return self._not_found(req)

    def _route_api(self, req: Request, seg: list[str]) -> Response:
        method = req.method
        if seg == ["whoami-v2"] and method == "GET":
            return self._whoami(req)
        if seg == ["repos", "create"] and method == "POST":
            return self._create_repo(req)
        if seg == ["validate-yaml"] and method == "POST":
            return _json({"errors": [], "warnings": []})  # README metadata is accepted as is
        # /api/{type}s/{namespace}/{name}[/{action}/{args...}]
        if len(seg) >= 3 and seg[0] in API_REPO_TYPES:
            req.repo_type, req.repo_id, req.args = (
                API_REPO_TYPES[seg[0]],
                f"{seg[1]}/{seg[2]}",
                seg[4:],
            )
            handler = {
                ("GET", None): self._repo_info,
                ("GET", "revision"): self._repo_info,
                ("GET", "tree"): self._tree,
                ("POST", "paths-info"): self._paths_info,
                ("GET", "refs"): self._refs,
                ("GET", "commits"): self._commits,
                ("POST", "preupload"): self._preupload,
                ("POST", "commit"): self._commit,
                ("POST", "branch"): self._create_branch,
                ("POST", "tag"): self._create_tag,
            }.get((method, seg[3] if len(seg) > 3 else None))
            if handler is not None:
                return handler(req)
        return self._not_found(req)

    def _not_found(self, req: Request) -> Response:
        # Logged: a client calling an endpoint the fake lacks is worth knowing about.
        path = "/" + "/".join(req.segments)
        logger.warning("fake hub: no route for %s %s", req.method, path)
        raise HubError(404, f"Not found: {req.method} {path}")

    # ---- auth -------------------------------------------------------------------------------

    def _user(self, req: Request) -> str | None:
        """The authenticated user, or None if anonymous; a wrong token is always rejected."""
        auth = req.headers.get("Authorization")
        if not auth:
            return None
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token != self.token:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.user

    def _require_user(self, req: Request) -> str:
        user = self._user(req)
        if user is None:
            raise HubError(401, "Unauthorized: this needs a valid token")
        return user

    def _readable_repo(self, req: Request) -> Repo:
        user = self._user(req)
        repo = self._repos.get((req.repo_type, req.repo_id))
        if repo is None or (repo.private and user is None):
            # Like the Hub, hide whether a private repo exists: 401 if anonymous, 404 otherwise.
            raise HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")
        return repo

    def _writable_repo(self, req: Request) -> Repo:
        self._require_user(req)
        return self._readable_repo(req)

    # ---- account and repos ------------------------------------------------------------------

    def _whoami(self, req: Request) -> Response:
        user = self._require_user(req)
        return _json(
            {
                "type": "user",
                "name": user,
                "fullname": user,
                "orgs": [],
                "auth": {"type": "access_token"},
            }
        )

    def _create_repo(self, req: Request) -> Response:
        user = self._require_user(req)
        payload = req.json()
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIXES:
            raise HubError(400, f"Invalid repo type: {repo_type}")
        repo = Repo(
            repo_type,
            f"{payload.get('organization') or user}/{payload['name']}",
            private=payload.get("visibility") == "private" or payload.get("private") is True,
        )
        url = f"{self.url}/{repo.url_path}"
        if (repo.repo_type, repo.repo_id) in self._repos:
            return _json({"error": "You already created this repo", "url": url}, 409)
        # Like the Hub, start with a commit holding the default .gitattributes.
        gitattributes = {".gitattributes": Blob(GITATTRIBUTES.encode(), is_lfs=False)}
        repo.branches["main"] = repo.add_commit(None, gitattributes, "initial commit").oid
        self._repos[(repo.repo_type, repo.repo_id)] = repo
        return _json({"url": url, "name": repo.repo_id, "id": repo.repo_id})

    def _repo_info(self, req: Request) -> Response:
        repo = self._readable_repo(req)
        commit = repo.resolve(req.revision)
        siblings = []
        for path, blob in sorted(commit.files.items()):
            sibling = {"rfilename": path}
            if req.flag("blobs"):  # HfApi.repo_info(files_metadata=True)
                sibling.update(size=len(blob.data), blobId=blob.oid)
                if blob.is_lfs:
                    sibling["lfs"] = {
                        "size": len(blob.data),
                        "sha256": blob.sha256,
                        "pointerSize": len(blob.pointer),
                    }
            siblings.append(sibling)
        return _json(
            {
                "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": commit.oid,
                "lastModified": commit.date,
                "createdAt": repo.created_at,
                "private": repo.private,
                "siblings": siblings,
            }
        )

    # ---- git data ---------------------------------------------------------------------------

    def _tree(self, req: Request) -> Response:
        commit = self._readable_repo(req).resolve(req.args[0] if req.args else "main")
        path = "/".join(req.args[1:]).strip("/")
        entries = _list_tree(commit.files, path, recursive=req.flag("recursive"))
        if path and not entries:
            raise HubError(404, f"No folder {path}", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        return _json(entries)

    def _paths_info(self, req: Request) -> Response:
        commit = self._readable_repo(req).resolve(req.revision)
        form = parse_qs(req.body.decode())  # the client posts a form: paths=a&paths=b&expand=False
        entries = []
        for path in (p.strip("/") for p in form.get("paths", [])):
            if path in commit.files:
                entries.append(commit.files[path].tree_entry(path))
            elif any(p.startswith(path + "/") for p in commit.files):
                entries.append(_directory_entry(path, commit.files))
        return _json(entries)

    def _refs(self, req: Request) -> Response:
        repo = self._readable_repo(req)

        def refs(kind: str, names: dict[str, str]) -> list[dict]:
            return [
                {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}
                for name, oid in sorted(names.items())
            ]

        return _json(
            {
                "branches": refs("heads", repo.branches),
                "tags": refs("tags", repo.tags),
                "converts": [],
                "pullRequests": [],
            }
        )

    def _commits(self, req: Request) -> Response:
        repo = self._readable_repo(req)
        commit, history = repo.resolve(req.revision), []
        while commit is not None:  # newest first, following first parents like `git log`
            history.append(commit.as_json())
            commit = repo.commits.get(commit.parent) if commit.parent else None
        return _json(history)

    def _create_branch(self, req: Request) -> Response:
        repo, branch = self._writable_repo(req), "/".join(req.args)
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        repo.branches[branch] = repo.resolve(req.json().get("startingPoint") or "main").oid
        return _json({})

    def _create_tag(self, req: Request) -> Response:
        repo, tag = self._writable_repo(req), req.json().get("tag")
        if not tag:
            raise HubError(400, "Missing tag name")
        if tag in repo.tags:
            raise HubError(409, f"Tag already exists: {tag}")
        repo.tags[tag] = repo.resolve(req.revision).oid
        return _json({})

    # ---- commits and uploads ----------------------------------------------------------------

    def _preupload(self, req: Request) -> Response:
        commit = self._writable_repo(req).resolve(req.revision)
        answers = []
        for file in req.json().get("files", []):
            path, sample = file["path"], base64.b64decode(file.get("sample", ""))
            lfs = path.endswith(LFS_SUFFIXES) or file["size"] > LFS_MIN_SIZE or b"\0" in sample
            existing = commit.files.get(path)
            # The client compares this oid with its own to leave unchanged files out of the commit.
            oid = existing.etag if existing is not None and existing.is_lfs == lfs else None
            mode = "lfs" if lfs else "regular"
            answers.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return _json({"files": answers, "commitOid": commit.oid})

    def _commit(self, req: Request) -> Response:
        repo, branch = self._writable_repo(req), req.revision.removeprefix("refs/heads/")
        if req.flag("create_pr"):
            raise HubError(400, "The fake hub does not support pull requests")
        if branch not in repo.branches:
            repo.resolve(branch)  # 404 RevisionNotFound if it is nothing at all
            raise HubError(400, f"Can only commit to a branch, not to {branch}")
        lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        head = repo.branches[branch]
        if header.get("parentCommit") not in (None, head):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        # Apply every operation to a copy of the tree: any error leaves the repo untouched.
        files = dict(repo.commits[head].files)
        for line in lines:
            if line["key"] != "header":
                self._apply_operation(files, line["key"], line["value"])
        title, message = header.get("summary", ""), header.get("description", "")
        commit = repo.add_commit(head, files, title, message, author=self.user)
        repo.branches[branch] = commit.oid
        commit_url = f"{self.url}/{repo.url_path}/commit/{commit.oid}"
        return _json(
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": commit_url,
                "pullRequestUrl": None,
                "hookOutput": "",
            }
        )

    def _apply_operation(self, files: dict[str, Blob], key: str, op: dict) -> None:
        path = op["path"].strip("/")
        if key == "file":
            content = op["content"]
            data = base64.b64decode(content) if op.get("encoding") == "base64" else content.encode()
            files[path] = Blob(data, is_lfs=False)
        elif key == "lfsFile":
            if op["oid"] not in self._lfs_objects:
                raise HubError(400, f"LFS object {op['oid']} for {path} was never uploaded")
            files[path] = Blob(self._lfs_objects[op["oid"]], is_lfs=True)
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            doomed = [p for p in files if p.startswith(path + "/")]
            if not doomed:
                raise HubError(404, f"No folder with this name: {path}", "EntryNotFound")
            for p in doomed:
                del files[p]
        else:
            raise HubError(400, f"Unknown commit operation: {key}")

    def _lfs_batch(self, req: Request) -> Response:
        self._writable_repo(req)
        payload = req.json()
        if payload.get("operation") != "upload":
            raise HubError(400, "The fake hub only supports LFS uploads")
        objects = []
        # One answer per distinct oid: files with identical content must be uploaded only once.
        for obj in {obj["oid"]: obj for obj in payload.get("objects", [])}.values():
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self._lfs_objects:  # no "actions" means "already uploaded"
                # No "verify" action: it is optional, and the upload itself checks the sha256.
                upload = {"href": f"{self.url}/_lfs/{obj['oid']}", "header": {}}
                answer["actions"] = {"upload": upload}
            objects.append(answer)
        return _json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_upload(self, req: Request, oid: str) -> Response:
        # Stands in for the pre-signed storage URL: no auth, but the content must match its sha256.
        if hashlib.sha256(req.body).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match sha256 {oid}")
        self._lfs_objects[oid] = req.body
        return Response(200, b"", {"ETag": f'"{oid}"'})

    # ---- downloads --------------------------------------------------------------------------

    def _resolve(self, req: Request, path: str) -> Response:
        commit = self._readable_repo(req).resolve(req.revision)
        blob = commit.files.get(path)
        if blob is None:
            # X-Repo-Commit lets the client cache that the file does not exist at this commit.
            raise HubError(404, f"No file {path}", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        size = len(blob.data)
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{blob.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if blob.is_lfs:  # the Hub redirects these to a CDN; serving them right here is simpler
            headers.update({"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(size)})
        byte_range = _byte_range(req.headers.get("Range"), size)  # HfFileSystem reads by ranges
        if byte_range is None:
            return Response(200, blob.data, headers)
        start, end = byte_range
        if start >= size or start > end:
            raise HubError(
                416, "Range not satisfiable", headers={"Content-Range": f"bytes */{size}"}
            )
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Response(206, blob.data[start : end + 1], headers)


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into `Request`s for `hub` (bound per server in `FakeHub.start`)."""

    hub: FakeHub
    # Keep-alive, as the clients expect; every response sets Content-Length.
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_POST = do_PUT = do_GET

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args) -> None:
        pass  # silence per-request logging to stderr

    def _serve(self) -> None:
        url = urlsplit(self.path)
        segments = [unquote(s) for s in url.path.split("/")[1:]]
        query = parse_qs(url.query)
        response = self.hub.handle(
            Request(self.command, segments, query, self.headers, self._body())
        )
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a stalled request)
            self.close_connection = True

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []  # streamed uploads of unknown length
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # CRLF after each chunk
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # optional trailers
        return b"".join(chunks)
