"""Networks: Conv2d subsampling, Conformer encoder, CTC model, HuBERT/WavLM upstreams, SUPERB heads."""
