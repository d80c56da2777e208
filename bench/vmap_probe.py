"""vmap-vs-sequential probe for two sweep groups of 8 members (β × seed); records the speedup and one
run's step time. Usage: python bench/vmap_probe.py MNIST_IDX_DIR OUT.json [STEPS=300]"""
import importlib.util, json, sys, time
import jax
from vae_jax import data as data_lib, sweep, sweep_vmap, train, models

def load(path, arg):
    spec = importlib.util.spec_from_file_location("c", path); m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m); return m.get_config(arg)

out = {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(), "jax": jax.__version__}
for name, path, arg in (("vae_sweep 784-500-20 b128", "configs/vae_sweep.py", None),
                        ("iwae_table1 784-200-200-50 b20", "configs/iwae_table1.py", None)):
    base = load(path, arg); base.data.dir = sys.argv[1]
    ovs = sweep.product(sweep.axis("objective.kl_weight", [0.5, 1.0]), sweep.axis("seed", [0, 1, 2, 3]))
    cfgs = [sweep.apply_overrides(base, o, "probe") for o in ovs]
    ds = data_lib.load(base.data)
    for steps in (int(sys.argv[3]) if len(sys.argv) > 3 else 300,):
        s = sweep_vmap.probe_speedup(cfgs, ds, steps=steps)
        out[f"{name}: vmap x8 speedup ({steps} steps)"] = s
        print(name, steps, s, flush=True)
    # one member's step time (plain train.make_train_epoch, no vmap)
    model = models.build_model(base.model, ds.image_shape)
    n = min(60000, 10 * steps * base.train.batch_size)
    st = train.create_state(base, model, jax.random.PRNGKey(0), ds.image_shape, n // base.train.batch_size)
    ep, steps = train.make_train_epoch(model, base, n)
    imgs = jax.device_put(ds.train_images[:n])
    st, m = ep(st, imgs, jax.random.PRNGKey(1), jax.random.PRNGKey(2)); jax.block_until_ready(m)
    t = time.perf_counter(); st, m = ep(st, imgs, jax.random.PRNGKey(1), jax.random.PRNGKey(2)); jax.block_until_ready(m)
    dt = time.perf_counter() - t
    out[f"{name}: single run step time (us)"] = dt / steps * 1e6
    out[f"{name}: single run examples/s"] = steps * base.train.batch_size / dt
    print(out, flush=True)
json.dump(out, open(sys.argv[2], "w"), indent=1)
