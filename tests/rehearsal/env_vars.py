"""The env-vars file `sam local invoke --env-vars` (and infra/invoke) takes: every function's
variables as template.yaml gives them, resolved against a deployed stack or a moto server.

    bash infra/env-vars --stack sealpost [--region eu-central-2] > env.json
    bash infra/env-vars --moto http://127.0.0.1:5000 > env.json

--stack reads the deployed stack (CloudFormation's DescribeStacks and DescribeStackResources,
with this shell's AWS credentials): its parameters and the physical names of its resources.
--moto makes the template's resources in that moto server first (a table, buckets, queues,
SES's sender identity and configuration set, the pepper in SSM) and sets AWS_ENDPOINT_URL too,
so the functions call it: with Docker, `sam local invoke ... --docker-network host`.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import REGION, REPO, Stack  # noqa: E402


def deployed(stack_name: str, region: str) -> Stack:
    cloudformation = boto3.client("cloudformation", region_name=region)
    described = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    parameters = {p["ParameterKey"]: p.get("ResolvedValue", p["ParameterValue"]) for p in described.get("Parameters", [])}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    account = described["StackId"].split(":")[4]
    stack = Stack(REPO / "template.yaml", parameters, name=stack_name, region=region, account=account)
    pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name)
    for page in pages:
        for resource in page["StackResourceSummaries"]:
            logical, physical = resource["LogicalResourceId"], resource.get("PhysicalResourceId", "")
            if logical not in stack.resources:
                continue
            if resource["ResourceType"] == "AWS::SQS::Queue":
                stack.attributes[(logical, "QueueUrl")] = physical
                stack.physical[logical] = physical.rsplit("/", 1)[-1]
            else:
                stack.physical[logical] = physical
    if "DistributionDomainName" in outputs:
        stack.attributes[("Distribution", "DomainName")] = outputs["DistributionDomainName"]
    return stack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="a deployed stack's name")
    where.add_argument("--moto", help="a moto server's URL: its resources are made first")
    parser.add_argument("--region", default=REGION)
    parser.add_argument("--sender-email", default="no-reply@sealpost.invalid", help="--moto: the SenderEmail parameter")
    args = parser.parse_args()
    if args.stack:
        stack = deployed(args.stack, args.region)
        extra: dict[str, str] = {}
    else:
        stack = Stack(REPO / "template.yaml", {"SenderEmail": args.sender_email})
        stack.provision(args.moto, base64.b64encode(secrets.token_bytes(32)).decode())
        extra = {"AWS_ENDPOINT_URL": args.moto}
    out = {f.logical_id: {**stack.environment(f), **extra} for f in stack.functions().values()}
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
