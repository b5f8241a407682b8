"""`segpipe plots`: DVC's plots page (`dvc plots show` / `dvc plots diff`) that renders offline.

DVC's default page loads Vega from a CDN, so without a network it shows only the PNG figures.
This page carries Vega, Vega-Lite and Vega-Embed inline (bundled by vl-convert), through DVC's
own `--html-template` option.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from segpipe.dvc_command import run_dvc

TEMPLATE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC plots</title>
    <script type="text/javascript">
%s
    </script>
    <style>table { border-spacing: 15px; }</style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def offline_template() -> str:
    """DVC's page template with the Vega libraries inline instead of its `{scripts}` CDN tags."""
    import vl_convert

    return TEMPLATE % vl_convert.javascript_bundle()


def write_plots_page(revisions: list[str], out_dir: Path) -> Path:
    """`out_dir/index.html` for the workspace (no `revisions`) or the workspace against `revisions`."""
    with tempfile.TemporaryDirectory(prefix="plots-template-") as tmp:
        template = Path(tmp) / "template.html"
        template.write_text(offline_template())
        command = ["plots", "diff", *revisions] if revisions else ["plots", "show"]
        run_dvc(*command, "--html-template", str(template), "-o", str(out_dir))
    return out_dir / "index.html"
