"""A fake ``aws`` CLI (v2) for testing deploy/cloudformation/deploy.sh without an AWS account.

It answers exactly the calls deploy.sh makes, checks each against the CLI's documented options
(an unknown subcommand or option exits 252 like the real CLI's usage error, so a new call must be
modelled here first), records every invocation as a JSON line in ``$FAKE_AWS_LOG`` and answers
from ``$FAKE_AWS_OUTPUTS`` (stack suffix -> {OutputKey: OutputValue}, sample outputs whose keys
the tests check against the templates). State (a secret's value) lives in ``$FAKE_AWS_STATE``.

Run as ``python -m tests.fakes.aws_cli`` through an ``aws`` shim on PATH (``install_fake_aws``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# the options deploy.sh may pass, per command (global --region/--query/--output on every one)
GLOBAL = {"--region", "--query", "--output"}
COMMANDS: dict[tuple[str, str], set[str]] = {
    ("sts", "get-caller-identity"): set(),
    ("cloudformation", "deploy"): {
        "--stack-name",
        "--template-file",
        "--capabilities",
        "--no-fail-on-empty-changeset",
        "--tags",
        "--parameter-overrides",
    },
    ("cloudformation", "describe-stacks"): {"--stack-name"},
    ("cloudformation", "describe-stack-resource"): {"--stack-name", "--logical-resource-id"},
    ("cloudformation", "delete-stack"): {"--stack-name"},
    ("cloudformation", "wait"): {"--stack-name"},  # wait stack-delete-complete
    ("secretsmanager", "get-secret-value"): {"--secret-id"},
    ("secretsmanager", "put-secret-value"): {"--secret-id", "--secret-string"},
    ("secretsmanager", "delete-secret"): {"--secret-id", "--force-delete-without-recovery"},
    ("ecs", "run-task"): {
        "--cluster",
        "--task-definition",
        "--launch-type",
        "--network-configuration",
    },
    ("ecs", "wait"): {"--cluster", "--tasks"},  # wait tasks-stopped
    ("ecs", "describe-tasks"): {"--cluster", "--tasks"},
    ("elbv2", "modify-load-balancer-attributes"): {"--load-balancer-arn", "--attributes"},
}
# options that take several values (until the next --option)
MULTI = {"--parameter-overrides", "--tags", "--capabilities", "--tasks", "--attributes"}
FLAGS = {"--no-fail-on-empty-changeset", "--force-delete-without-recovery"}
WAITERS = {("cloudformation", "wait"): "stack-delete-complete", ("ecs", "wait"): "tasks-stopped"}
ACCOUNT = "123456789012"


def usage_error(message: str) -> None:
    print(f"aws: error: {message}", file=sys.stderr)
    sys.exit(252)


def parse(argv: list[str]) -> tuple[str, str, dict[str, list[str]]]:
    if len(argv) < 2:
        usage_error("the following arguments are required: command, operation")
    service, operation, rest = argv[0], argv[1], argv[2:]
    # global options may come first: aws --region r cloudformation deploy ...
    pre: dict[str, list[str]] = {}
    while service.startswith("--"):
        pre[service] = [operation]
        service, operation, rest = rest[0], rest[1], rest[2:]
    key = (service, operation)
    if key not in COMMANDS:
        usage_error(f"argument operation: invalid choice: {service} {operation}")
    if key in WAITERS:
        if not rest or rest[0] != WAITERS[key]:
            usage_error(f"{service} wait: invalid waiter {rest[:1]}")
        rest = rest[1:]
    opts: dict[str, list[str]] = dict(pre)
    i = 0
    while i < len(rest):
        name = rest[i]
        if not name.startswith("--"):
            usage_error(f"unexpected argument {name!r}")
        if name not in COMMANDS[key] | GLOBAL:
            usage_error(f"Unknown options: {name}")
        i += 1
        values: list[str] = []
        if name not in FLAGS:
            while i < len(rest) and not rest[i].startswith("--"):
                values.append(rest[i])
                i += 1
                if name not in MULTI:
                    break
            if not values:
                usage_error(f"argument {name}: expected one argument")
        opts[name] = values
    if "--region" not in opts:
        usage_error("deploy.sh always names the region (--region)")
    return service, operation, opts


def one(opts: dict[str, list[str]], name: str) -> str:
    if name not in opts:
        usage_error(f"the following arguments are required: {name}")
    return opts[name][0]


def main(argv: list[str]) -> int:
    service, operation, opts = parse(argv)
    log = os.environ.get("FAKE_AWS_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(json.dumps({"service": service, "operation": operation, "opts": opts}) + "\n")
    outputs: dict[str, dict[str, str]] = json.loads(
        Path(os.environ["FAKE_AWS_OUTPUTS"]).read_text()
    )
    state_file = Path(os.environ["FAKE_AWS_STATE"])
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    prefix = os.environ.get("FAKE_AWS_PREFIX", "datatorag") + "-"
    key = (service, operation)

    if key == ("sts", "get-caller-identity"):
        print(f"arn:aws:sts::{ACCOUNT}:assumed-role/PlatformAdmin/alice")
    elif key == ("cloudformation", "deploy"):
        template = Path(one(opts, "--template-file"))
        if not template.is_file():
            print(f"Invalid template path {template}", file=sys.stderr)
            return 255
        if template.stat().st_size > 51200:  # the limit without --s3-bucket
            print("Templates with a size greater than 51,200 bytes must be deployed via S3")
            return 255
        for pair in opts.get("--parameter-overrides", []):
            if "=" not in pair:
                usage_error(f"--parameter-overrides: {pair!r} is not Key=Value")
        deployed = state.setdefault("deployed", [])
        deployed.append(one(opts, "--stack-name"))
    elif key == ("cloudformation", "describe-stacks"):
        name = one(opts, "--stack-name")
        suffix = name.removeprefix(prefix)
        if name not in state.get("deployed", []) or suffix not in outputs:
            print(
                f"An error occurred (ValidationError) when calling the DescribeStacks operation: "
                f"Stack with id {name} does not exist",
                file=sys.stderr,
            )
            return 254
        if one(opts, "--query") != "Stacks[0].Outputs[].[OutputKey,OutputValue]":
            usage_error("describe-stacks: deploy.sh's query changed; model it here")
        for k, v in outputs[suffix].items():
            print(f"{k}\t{v}")
    elif key == ("cloudformation", "describe-stack-resource"):
        print(
            f"arn:aws:elasticloadbalancing:eu-west-1:{ACCOUNT}:loadbalancer/app/datatorag-gateway/abc"
        )
    elif key in (("cloudformation", "delete-stack"), ("cloudformation", "wait")):
        pass
    elif key == ("secretsmanager", "get-secret-value"):
        print(state.get("secret", "GeneratedRandomKey0123456789abcdefGHIJKL"))
    elif key == ("secretsmanager", "put-secret-value"):
        state["secret"] = one(opts, "--secret-string")
    elif key == ("secretsmanager", "delete-secret"):
        pass
    elif key == ("ecs", "run-task"):
        print(f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task/datatorag/0123456789abcdef")
    elif key == ("ecs", "wait"):
        pass
    elif key == ("ecs", "describe-tasks"):
        print(os.environ.get("FAKE_AWS_INIT_EXIT", "0"))
    elif key == ("elbv2", "modify-load-balancer-attributes"):
        pass
    state_file.write_text(json.dumps(state))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
