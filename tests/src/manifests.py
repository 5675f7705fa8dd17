"""Validation helper for tests/src/manifests.rs, run inside its venv.

`yaml2json FILE...` prints the documents of the files as one JSON list;
`validate FILE VERSION...` validates every document of FILE and prints them
as JSON, exiting 1 with every problem listed when one fails.
"""
import json, sys, yaml

def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]

def dropped(given, kept, path=""):
    """Keys in `given` that the model did not keep: unknown fields."""
    out = []
    if isinstance(given, dict):
        kept = kept if isinstance(kept, dict) else {}
        for k, v in given.items():
            if k not in kept:
                out.append(f"{path}.{k}")
            else:
                out.extend(dropped(v, kept[k], f"{path}.{k}"))
    elif isinstance(given, list):
        kept = kept if isinstance(kept, list) else []
        for i, v in enumerate(given):
            out.extend(dropped(v, kept[i] if i < len(kept) else None, f"{path}[{i}]"))
    return out

def validate(path, versions):
    import kubernetes_validate
    from cloudcoil.models.prometheus_operator import v1 as monitoring
    crd_models = {"ServiceMonitor": monitoring.ServiceMonitor, "PrometheusRule": monitoring.PrometheusRule}
    errors, all_docs = [], docs(path)
    for d in all_docs:
        what = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
        if d.get("apiVersion") == "monitoring.coreos.com/v1":
            model = crd_models.get(d.get("kind"))
            if model is None:
                errors.append(f"{what}: no model for this kind")
                continue
            try:
                kept = model.model_validate(d).model_dump(by_alias=True, exclude_none=True, mode="json")
            except Exception as e:
                errors.append(f"{what}: {e}")
                continue
            for field in dropped(d, kept):
                errors.append(f"{what}: unknown field {field}")
            continue
        for v in versions:
            try:
                kubernetes_validate.validate(d, v, strict=True)
            except Exception as e:
                errors.append(f"{what} (Kubernetes {v}): {type(e).__name__}: {e}")
    json.dump(all_docs, sys.stdout)
    if errors:
        print("\n".join(["", "validation failed:"] + errors), file=sys.stderr)
        sys.exit(1)

if sys.argv[1] == "yaml2json":
    json.dump([d for p in sys.argv[2:] for d in docs(p)], sys.stdout)
elif sys.argv[1] == "validate":
    validate(sys.argv[2], sys.argv[3:])
else:
    sys.exit(f"unknown command {sys.argv[1]}")
