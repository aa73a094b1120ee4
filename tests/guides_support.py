"""The deployment guides (../shared/guides, or $AGENTNET_GUIDES_DIR) as the tests read them."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GUIDES = Path(os.environ.get("AGENTNET_GUIDES_DIR", REPO.parent / "shared" / "guides"))
GUIDE_URL = 'URL="https://${component}.worm.sex/"'  # the one line of verify_deployment.sh that names the deployment


def guide(number: str) -> str:
    found = sorted(GUIDES.glob(f"{number}_*.txt"))
    assert found, f"deployment guide {number} not found in {GUIDES} (set AGENTNET_GUIDES_DIR)"
    return found[0].read_text()


def verify_deployment_script(host: str) -> str:
    """Guide 000's verify_deployment.sh, word for word but for each component's host (e.g.
    `${component}.localhost:3000`), over plain HTTP: TLS is the ingress's business, not agentnet's."""
    text = guide("000")
    script = re.search(r"Create health check script \(`verify_deployment.sh`\):\s*```bash\n(.*?)```", text, re.S).group(1)
    assert script.count(GUIDE_URL) == 1, "guide 000's script changed: read it again"
    return script.replace(GUIDE_URL, f'URL="http://{host}/"')
