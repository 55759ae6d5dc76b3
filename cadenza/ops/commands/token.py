"""`cadenza admin token keygen|issue`: a dev signing key and tokens signed with it.

For tests, demos and a dev server started with ``--auth-jwks DIR/jwks.json``; in production the
server reads the identity provider's JWKS and tokens come from there.
"""

from __future__ import annotations

import sys

import click

from cadenza.engine.auth.config import parse_duration
from cadenza.engine.auth.tokens import issue, keygen, load_private_key


@click.group("token")
def token() -> None:
    """Dev keys and bearer tokens for a server with authorization on."""


@token.command("keygen")
@click.option("--out", "out_dir", required=True, help="Directory for private.pem and jwks.json")
@click.option(
    "--alg",
    type=click.Choice(["RS256", "ES256"]),
    default="RS256",
    show_default=True,
    help="Signature algorithm of the key",
)
def keygen_command(out_dir: str, alg: str) -> None:
    """Create a signing key (private.pem, owner-only) and its JWKS (jwks.json) for
    `server start-dev --auth-jwks DIR/jwks.json` and `token issue --key DIR/private.pem`."""
    try:
        keys = keygen(out_dir, algorithm=alg)
    except (OSError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"private key: {keys.private_key}")
    click.echo(f"JWKS:        {keys.jwks}  (key id {keys.key_id}, {keys.algorithm})")


@token.command("issue")
@click.option("--key", "key_path", required=True, help="PEM private key (from `token keygen`)")
@click.option(
    "--permissions",
    "-p",
    "permissions",
    multiple=True,
    required=True,
    help="NAMESPACE:ROLE or system:ROLE, ROLE one of read, worker, write, admin (repeatable)",
)
@click.option("--ttl", default="1h", show_default=True, help="How long the token is valid: 30m, 1h, 3600")
@click.option("--subject", default="cadenza-dev", show_default=True, help="The token's sub claim")
@click.option("--audience", default=None, help="The token's aud claim (when the server checks it)")
@click.option(
    "--claim",
    "permissions_claim",
    default="permissions",
    show_default=True,
    help="Claim that carries the permissions (the server's permissionsClaimName)",
)
def issue_command(
    key_path: str,
    permissions: tuple[str, ...],
    ttl: str,
    subject: str,
    audience: str | None,
    permissions_claim: str,
) -> None:
    """Mint a signed token granting --permissions; prints it on stdout (and nothing else), e.g.
    `export CADENZA_AUTH_TOKEN=$(cadenza admin token issue --key k/private.pem -p default:write)`."""
    try:
        ttl_s = parse_duration(ttl)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--ttl") from None
    try:
        private_key = load_private_key(key_path)
    except OSError as e:
        raise click.BadParameter(f"cannot read {key_path}: {e.strerror or e}", param_hint="--key") from None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--key") from None
    try:
        token_text = issue(
            private_key,
            permissions,
            ttl_s=ttl_s,
            subject=subject,
            audience=audience,
            permissions_claim=permissions_claim,
        )
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--permissions") from None
    sys.stdout.write(token_text + "\n")
