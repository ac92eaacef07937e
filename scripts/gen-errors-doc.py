#!/usr/bin/env python3
"""Regenerate docs/errors.md: every reason slug the core can report.

The slugs are the stable contract of the error hook (`ErrorEvent::reason`).
This script reads them from oauth-core/src, so the table cannot drift from
the code; oauth-core/tests/docs_errors.rs fails when a slug is missing here.

    python3 scripts/gen-errors-doc.py
"""
import pathlib
import re

root = pathlib.Path(__file__).resolve().parent.parent
src = root / "oauth-core" / "src"

SLUG = re.compile(r'(?:const\s+([A-Z0-9_]+)\s*:\s*Reason\s*=\s*)?Reason::new\("([a-z0-9_]+)"\)')
CODE_NAMES = {
    "invalid_request": "invalid_request", "invalid_client": "invalid_client", "invalid_grant": "invalid_grant",
    "invalid_token": "invalid_token", "invalid_metadata": "invalid_client_metadata",
    "invalid_redirect": "invalid_redirect_uri", "server_error": "server_error", "unavailable": "temporarily_unavailable",
}
ERROR_CODE = {
    "InvalidRequest": "invalid_request", "InvalidClient": "invalid_client", "InvalidGrant": "invalid_grant",
    "UnauthorizedClient": "unauthorized_client", "UnsupportedGrantType": "unsupported_grant_type",
    "UnsupportedResponseType": "unsupported_response_type", "InvalidScope": "invalid_scope",
    "AccessDenied": "access_denied", "ServerError": "server_error", "TemporarilyUnavailable": "temporarily_unavailable",
    "InvalidTarget": "invalid_target", "InvalidToken": "invalid_token", "InsufficientScope": "insufficient_scope",
    "InvalidRedirectUri": "invalid_redirect_uri", "InvalidClientMetadata": "invalid_client_metadata",
    "UnsupportedTokenType": "unsupported_token_type",
}

rows = {}
for path in sorted(src.rglob("*.rs")):
    text = path.read_text()
    module = path.relative_to(src).as_posix()
    for m in SLUG.finditer(text):
        const, slug = m.group(1), m.group(2)
        codes = set()
        if const:
            for use in re.finditer(r"(\w+)\(\s*(?:ErrorCode::(\w+)\s*,\s*)?" + const + r"\b", text):
                if use.group(2):
                    codes.add(ERROR_CODE.get(use.group(2), use.group(2)))
                elif use.group(1) in CODE_NAMES:
                    codes.add(CODE_NAMES[use.group(1)])
        entry = rows.setdefault(slug, (set(), set()))
        entry[0].add(module)
        entry[1].update(codes)

lines = [
    "# Error reasons",
    "",
    "Every error the provider answers carries an OAuth error code for the client",
    "and, for the application's error hook (`ProviderBuilder::on_error`), a stable",
    "reason slug saying *why*. Slugs are part of the public contract: they are",
    "never renamed within a major version. Descriptions sent to clients never hold",
    "a secret; neither does anything passed to the hook.",
    "",
    "This table is generated from the source by `scripts/gen-errors-doc.py`;",
    "a test fails when a slug in the code is missing here. The OAuth code column",
    "lists the codes the slug is raised with where the generator can read them",
    "from the code (empty: see the module).",
    "",
    "| reason | where | OAuth error code |",
    "|---|---|---|",
]
for slug in sorted(rows):
    modules, codes = rows[slug]
    lines.append(f"| `{slug}` | {', '.join(sorted(modules))} | {', '.join(sorted(codes))} |")
(root / "docs" / "errors.md").write_text("\n".join(lines) + "\n")
print(f"{len(rows)} reasons written to docs/errors.md")
