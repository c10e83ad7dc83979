"""One built function, one event: the stand-in for `sam local invoke` where Docker is missing.

    bash infra/invoke <handler> <event.json> [--env-vars env.json]

<handler> is the function's Handler in template.yaml (verify-code, sweep, …). It runs the
function's `bootstrap` from .aws-sam/build (`bash infra/build` makes it; arm64 under qemu on an
x86 machine) behind a Lambda Runtime API, hands it the event, prints its answer (JSON) on
stdout and its log on stderr. Exit status 0 when it answered, 1 on an init error, a crash or a
handler error.

Without --env-vars the function gets the environment template.yaml gives it, resolved against a
moto server started for this call with the template's resources (tests/rehearsal/harness.py):
what a first try needs, with no AWS account. With --env-vars, the file `sam local invoke`
takes (`{"<LogicalId>": {"VAR": "value"}, "Parameters": {...}}`, e.g. from infra/env-vars) gives
the template's variables instead, and the function calls whatever they and this shell's AWS_*
variables (region, credentials, AWS_ENDPOINT_URL) point at: a deployed stack's table, or a moto
server of your own.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    REGION, REPO, FunctionError, Lambda, Moto, Stack, Unresolvable, default_artifacts, log, new_log_dir, runner_for,
)


class FileEnvironment(Lambda):
    """The functions with the environment an env-vars file gives, and this shell's AWS settings."""

    def __init__(self, stack: Stack, artifacts: Path, runner: list[str], variables: dict, log_dir: Path) -> None:
        super().__init__(stack, artifacts, runner, "", log_dir)
        self.variables = variables

    def environment(self, function):  # noqa: ANN001, ANN201
        own = {k: str(v) for k, v in {**self.variables.get("Parameters", {}),
                                      **self.variables.get(function.logical_id, {})}.items()}
        missing = [k for k in self.stack.environment(function) if k not in own]
        if missing:
            raise Unresolvable(f"{function.logical_id} in the env-vars file lacks {', '.join(missing)}")
        # Lambda hands a function its role's credentials; here they are this shell's, found as
        # the AWS CLI finds them (variables, AWS_PROFILE, SSO, ...).
        import boto3

        found = boto3.Session().get_credentials()
        if found is None:
            raise Unresolvable("no AWS credentials in this shell (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY)")
        frozen = found.get_frozen_credentials()
        shell = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
        if frozen.token:
            shell["AWS_SESSION_TOKEN"] = frozen.token
        if "AWS_ENDPOINT_URL" in os.environ:
            shell["AWS_ENDPOINT_URL"] = os.environ["AWS_ENDPOINT_URL"]
        region = os.environ.get("AWS_REGION") or boto3.Session().region_name or REGION
        base = {k: v for k, v in self.lambda_own(function).items() if k != "AWS_SESSION_TOKEN"}
        return {**base, "AWS_REGION": region, "AWS_DEFAULT_REGION": region, **shell, **own}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("handler", help="the function's Handler in template.yaml (verify-code, sweep, ...)")
    parser.add_argument("event", type=Path, help="the event (JSON), e.g. events/verify-code.json")
    parser.add_argument("--env-vars", type=Path, help="sam local invoke's env-vars file (infra/env-vars makes one)")
    parser.add_argument("--artifacts", type=Path, default=default_artifacts(), help="sam build's output (.aws-sam/build)")
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="a template parameter (SenderEmail defaults to no-reply@sealpost.invalid)")
    args = parser.parse_args()
    event = args.event.read_bytes()
    json.loads(event)  # a readable error before anything starts
    parameters = {"SenderEmail": "no-reply@sealpost.invalid", **dict(p.split("=", 1) for p in args.parameter)}
    stack = Stack(REPO / "template.yaml", parameters)
    functions = stack.functions()
    if args.handler not in functions:
        log(f"invoke: no function with Handler {args.handler!r}; the handlers: {', '.join(sorted(functions))}")
        return 2
    bootstrap = args.artifacts / functions[args.handler].logical_id / "bootstrap"
    if not bootstrap.is_file():
        log(f"invoke: no {bootstrap}: run `bash infra/build` first")
        return 2
    log_dir = new_log_dir("sealpost-invoke-")
    moto = None
    try:
        if args.env_vars:
            lambdas: Lambda = FileEnvironment(stack, args.artifacts, runner_for(bootstrap),
                                              json.loads(args.env_vars.read_text()), log_dir)
        else:
            moto = Moto(sys.executable, log_dir)
            import base64

            stack.provision(moto.url, base64.b64encode(secrets.token_bytes(32)).decode())
            lambdas = Lambda(stack, args.artifacts, runner_for(bootstrap), moto.url, log_dir)
        try:
            answer = lambdas.instance(args.handler).invoke(event)
            print(json.dumps(json.loads(answer or b"null"), indent=2, ensure_ascii=False))
            status = 0
        except FunctionError as e:
            log(f"invoke: {e}")
            status = 1
        finally:
            for handler, text in lambdas.logs().items():
                sys.stderr.write(text)
            lambdas.stop()
        return status
    except Unresolvable as e:
        log(f"invoke: {e}")
        return 2
    finally:
        if moto is not None:
            moto.stop()
        shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
