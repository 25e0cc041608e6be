"""Fill in deploy/nginx/opendps-stream.conf.template: ``python deploy/render.py PREFIX LISTEN
ADDR [ADDR ...] > nginx.conf``. The cluster tests render the same template the same way."""

from __future__ import annotations

import sys
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx") / "opendps-stream.conf.template"
DEBIAN_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


def render(prefix: str, listen: str, instances: list[str]) -> str:
    module = f"load_module {DEBIAN_MODULE};" if DEBIAN_MODULE.exists() else ""

    def servers(port: int) -> str:
        return "\n".join(f"        server {a}:{port} max_fails=1 fail_timeout=5s;"
                         for a in instances)

    return (TEMPLATE.read_text()
            .replace("@STREAM_MODULE@", module).replace("@PREFIX@", prefix)
            .replace("@LISTEN@", listen)
            .replace("@UPSTREAM_HTTPS@", servers(443)).replace("@UPSTREAM_MQTT@", servers(8883)))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    print(render(sys.argv[1], sys.argv[2], sys.argv[3:]))
