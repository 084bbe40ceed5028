#!/usr/bin/env python3
"""The deployment's rehearsal without AWS: runs template.yaml through AWS's own SAM
translator (the `aws-sam-translator` package that `sam deploy` and CloudFormation's
AWS::Serverless transform use) and prints the CloudFormation it generates, as JSON.

    .venv/bin/python scripts/translate-template.py [template.yaml] [-o out.json]

Offline: each function's local CodeUri is replaced by a placeholder S3 URI first (as `sam
package` does before a deployment), parameters keep the template's defaults (those without one stay `Ref`s, as the
translator leaves them), the pseudo-parameters get placeholders (region us-east-1, account
123456789012), and AWS managed policies are looked up only in the map bundled with the
translator; a name it does not know stops the translation instead of asking IAM.
"""

import argparse
import json
import os
import sys

import yaml

REGION = "us-east-1"
ACCOUNT = "123456789012"


class OfflineManagedPolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader, which lists AWS's managed policies
    through IAM. The translator asks it only for a policy name that is neither an ARN nor in
    its bundled map (samtranslator/internal/data/aws_managed_policies.json)."""

    def load(self):
        raise SystemExit(
            "translate-template: the template names a managed policy that the translator's bundled map "
            "does not know, and there is no IAM to ask offline; use its ARN in template.yaml"
        )


def intrinsic(name):
    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


class CfnLoader(yaml.SafeLoader):
    pass


for short in ["And", "Base64", "Cidr", "Equals", "FindInMap", "GetAtt", "GetAZs", "If", "ImportValue",
              "Join", "Not", "Or", "Select", "Split", "Sub", "Transform", "Condition", "Ref"]:
    long = short if short in ("Ref", "Condition") else f"Fn::{short}"
    CfnLoader.add_constructor(f"!{short}", intrinsic(long))


def package(sam):
    """What `sam package` does before the transform: each function's local CodeUri becomes the
    S3 object its zip was uploaded to (a placeholder bucket here; nothing is uploaded)."""
    for logical_id, resource in sam.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.setdefault("Properties", {})
        uri = props.get("CodeUri")
        if isinstance(uri, str) and not uri.startswith("s3://"):
            props["CodeUri"] = f"s3://polis-rehearsal-artifacts/{logical_id}.zip"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", nargs="?", default="template.yaml")
    parser.add_argument("-o", "--output", help="write the CloudFormation JSON here (default: stdout)")
    args = parser.parse_args()

    # The translator takes the region (and from it the partition) from a boto3 session.
    os.environ["AWS_DEFAULT_REGION"] = REGION
    os.environ["AWS_REGION"] = REGION
    from samtranslator.translator.transform import transform

    with open(args.template, encoding="utf-8") as f:
        sam = yaml.load(f, Loader=CfnLoader)
    package(sam)
    pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
    try:
        cfn = transform(sam, pseudo, OfflineManagedPolicyLoader())
    except Exception as e:  # InvalidDocumentException lists every cause
        causes = getattr(e, "causes", None) or []
        detail = "; ".join(getattr(c, "message", str(c)) for c in causes) or str(e)
        sys.exit(f"translate-template: the SAM translator rejected {args.template}: {detail}")
    text = json.dumps(cfn, indent=1, sort_keys=True)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
