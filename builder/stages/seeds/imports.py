"""`imports`: the imports each function needs to stand alone, inferred by `autoimport`.

Adds `code` (the inferred import lines, two blank lines, then the function's own text) and
`imports` (the import lines added, possibly none); `function` stays the extracted text,
decorators included. The function's own text is `function` less its decorator lines: a
decorator names something of its file (`@app.route`, `@pytest.fixture`), which a function
standing alone cannot import, so type-checking it would drop the function for a line that is
not its own (the published pipeline's extraction leaves decorators out, and keeps those
functions). So the lineage is `code == "\\n".join(imports) + "\\n\\n\\n" + own` whenever imports
were added, `own = function_rules.without_decorators(function)`.
See `builder/seeds/import_inference.py` for what `autoimport` can and cannot place and the three
defaults changed for reproducibility. Each function runs in a child process killed after
`timeout_s` (dropped as `import_timeout`); a function the tool fails on is `import_failed`.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from builder.config.fields import bounded, runtime_only
from builder.errors import StageError
from builder.pipeline.rows import ChunkResult, Drop, Row, RowStage
from builder.pipeline.step import StepParams
from builder.stages.seeds.function_rules import without_decorators
from builder.stages.seeds.import_inference import ImportInferrer, NotInferred


@dataclass
class ImportsParams(StepParams):
    timeout_s: float = bounded(10.0, gt=0)
    num_proc: int = runtime_only(0, ge=0)  # 0: every core


class ImportsStage(RowStage):
    name = "imports"
    params_class = ImportsParams
    reads = ("function",)
    adds = ("code", "imports")
    version = 2  # 2: `code` is the function without its decorators
    chunk_size = 500
    description = "Functions with the imports they need prepended (autoimport), as standalone code."

    params: ImportsParams

    def fingerprint_extra(self) -> dict:
        version = _version("autoimport")
        if version == "(not installed)":  # checked at plan time, before any work

            raise StageError(
                "the imports stage needs autoimport (GPL-3.0, an optional extra): "
                "pip install 'code-instruct-builder[seeds]'"
            )
        return {"autoimport": version}

    def num_proc(self) -> int:
        return self.params.num_proc or len(os.sched_getaffinity(0))

    def process(self, rows: list[Row]) -> ChunkResult:
        if importlib.util.find_spec("autoimport") is None:
            raise StageError("the imports stage needs autoimport: pip install autoimport")
        timeout = self.params.timeout_s
        inferrer = self.worker_resources.get(  # one child process per worker, across chunks
            ("autoimport", timeout), lambda: ImportInferrer(timeout), group="autoimport"
        )
        result = ChunkResult()
        for row in rows:
            own = without_decorators(row["function"])
            inferred = inferrer.infer(own)
            if isinstance(inferred, NotInferred):
                result.dropped.append(Drop(row, inferred.reason, inferred.detail))
                continue
            result.kept.append({**row, "code": inferred.code, "imports": inferred.imports})
            if inferred.imports:
                result.stats["functions_given_imports"] += 1
            if own != row["function"]:
                result.stats["decorators_left_out_of_code"] += 1
        return result

    def card_notes(self) -> str:
        return (
            f"Imports inferred with `autoimport` {_version('autoimport')} "
            "(pyflakes finds the undefined names; each is looked up in autoimport's table of "
            "common names, then among the modules installed where the stage ran, then in "
            "`typing`). Changed from its defaults: imports inside the function are left in "
            "place (so `function` is unchanged and `code` is the added `imports`, two blank "
            "lines, then the function without its decorator lines, which name things of its "
            "file that no function alone can import), its lookup of the current project is off, and it runs "
            "with `python -I` in an empty directory. Consequence: a third-party module used "
            "by its full name (`numpy.zeros`) is imported only if it was installed where the "
            "stage ran; aliases (`np`) and globals of the original file stay undefined and "
            "are dropped by `typecheck`. "
            f"Each function had {self.params.timeout_s:g}s, in a child process killed on "
            "timeout (`import_timeout`); `import_failed` is an error of the tool."
        )


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "(not installed)"
