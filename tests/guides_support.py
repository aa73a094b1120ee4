"""Guide 000's verify_deployment.sh as the tests run it. A copy sits in tests/guides (a fresh
clone has no ../shared/guides); where the guides are at hand ($AGENTNET_GUIDES_DIR, else
../shared/guides), the copy is checked against the guide word for word first."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GUIDES = Path(os.environ.get("AGENTNET_GUIDES_DIR", REPO.parent / "shared" / "guides"))
SCRIPT_COPY = Path(__file__).with_name("guides") / "verify_deployment.sh"
GUIDE_URL = 'URL="https://${component}.worm.sex/"'  # the one line of verify_deployment.sh that names the deployment


def guide_script() -> str | None:
    """The script as guide 000 prints it, or None when the guides are not at hand."""
    found = sorted(GUIDES.glob("000_*.txt"))
    if not found:
        return None
    script = re.search(r"Create health check script \(`verify_deployment.sh`\):\s*```bash\n(.*?)```",
                       found[0].read_text(), re.S)
    assert script, f"{found[0]} no longer holds verify_deployment.sh: read it again"
    return script.group(1)


def verify_deployment_script(host: str) -> str:
    """Guide 000's verify_deployment.sh, word for word but for each component's host (e.g.
    `${component}.localhost:3000`), over plain HTTP: TLS is the ingress's business, not agentnet's."""
    script = SCRIPT_COPY.read_text()
    from_guide = guide_script()
    assert from_guide in (None, script), f"guide 000's script differs from {SCRIPT_COPY}: copy it again"
    assert script.count(GUIDE_URL) == 1, "guide 000's script changed: read it again"
    return script.replace(GUIDE_URL, f'URL="http://{host}/"')
