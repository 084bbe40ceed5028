#!/usr/bin/env python3
"""The deployment's rehearsal without AWS: runs template.yaml through AWS's own SAM
translator (the `aws-sam-translator` package that `sam deploy` and CloudFormation's
AWS::Serverless transform use) and prints the CloudFormation it generates, as JSON.

    .venv/bin/python scripts/translate-template.py [template.yaml] [-o out.json]
        [--config-env prod] [--parameter-overrides "AlarmEmail=oncall@bank.example ..."]

With `--config-env`, the parameters are those `sam deploy --config-env` would send (samconfig.toml's
`parameter_overrides` of that environment, then `--parameter-overrides` on top), and the template's
`Rules` are checked against them as CloudFormation checks them before it deploys anything: a failed
assertion prints its AssertDescription and the script exits 2, as the deployment would stop.

Offline: each function's local CodeUri is replaced by a placeholder S3 URI first (as `sam
package` does before a deployment), parameters keep the template's defaults (those without one stay `Ref`s, as the
translator leaves them), the pseudo-parameters get placeholders (region us-east-1, account
123456789012), and AWS managed policies are looked up only in the map bundled with the
translator; a name it does not know stops the translation instead of asking IAM.
"""

import argparse
import json
import os
import shlex
import sys
import tomllib

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


def parameter_overrides(text):
    """`Key=Value Key2="a value"` as `sam deploy` takes them."""
    values = {}
    for pair in shlex.split(text or ""):
        key, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"translate-template: parameter override {pair!r} is not Key=Value")
        values[key] = value
    return values


def deploy_parameters(config_env, overrides):
    """The parameter values `sam deploy --config-env config_env` sends."""
    values = {}
    if config_env:
        with open("samconfig.toml", "rb") as f:
            config = tomllib.load(f)
        deploy = config.get(config_env, {}).get("deploy", {}).get("parameters")
        if deploy is None:
            sys.exit(f"translate-template: samconfig.toml has no [{config_env}.deploy.parameters]")
        values.update(parameter_overrides(deploy.get("parameter_overrides", "")))
    values.update(parameter_overrides(overrides))
    return values


def evaluate(expr, params):
    """A Rules expression (the functions CloudFormation allows in Rules) with the parameters' values."""
    if isinstance(expr, dict) and len(expr) == 1:
        (name, args), = expr.items()
        if name == "Ref":
            if args not in params:
                sys.exit(f"translate-template: a rule refers to {args}, which has no value")
            return params[args]
        if name == "Fn::Equals":
            a, b = (evaluate(x, params) for x in args)
            return str(a) == str(b)
        if name == "Fn::Not":
            return not evaluate(args[0], params)
        if name == "Fn::And":
            return all(evaluate(x, params) for x in args)
        if name == "Fn::Or":
            return any(evaluate(x, params) for x in args)
        if name == "Fn::Contains":
            items, value = evaluate(args[0], params), evaluate(args[1], params)
            return value in items
        sys.exit(f"translate-template: the rehearsal cannot evaluate {name} in Rules")
    if isinstance(expr, list):
        return [evaluate(x, params) for x in expr]
    return expr


def broken_rules(cfn, given):
    """The AssertDescription of every assertion CloudFormation would refuse the deployment for."""
    params = {name: p.get("Default") for name, p in cfn.get("Parameters", {}).items()}
    unknown = sorted(set(given) - set(params))
    if unknown:
        sys.exit(f"translate-template: the template has no parameter {', '.join(unknown)}")
    params.update(given)
    missing = sorted(name for name, value in params.items() if value is None)
    if missing:
        sys.exit(f"translate-template: no value for {', '.join(missing)} (no default, not overridden)")
    broken = []
    for name, rule in cfn.get("Rules", {}).items():
        if not evaluate(rule.get("RuleCondition", True), params):
            continue
        for assertion in rule.get("Assertions", []):
            if not evaluate(assertion["Assert"], params):
                broken.append(f"{name}: {' '.join(assertion.get('AssertDescription', 'assertion failed').split())}")
    return broken


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", nargs="?", default="template.yaml")
    parser.add_argument("-o", "--output", help="write the CloudFormation JSON here (default: stdout)")
    parser.add_argument("--config-env", help="check the Rules with this samconfig.toml environment's parameters")
    parser.add_argument("--parameter-overrides", help="Key=Value pairs on top of the environment's")
    args = parser.parse_args()
    given = deploy_parameters(args.config_env, args.parameter_overrides)

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
    if args.config_env or args.parameter_overrides:
        broken = broken_rules(cfn, given)
        if broken:
            print("translate-template: CloudFormation would refuse this deployment:", file=sys.stderr)
            for line in broken:
                print(f"  {line}", file=sys.stderr)
            sys.exit(2)
    text = json.dumps(cfn, indent=1, sort_keys=True)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
