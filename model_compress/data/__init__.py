"""Data layer: tokenization, task processors, features, OFRecord files, loaders, default data.

Modules (see docs/formats.md): ``tokenization`` (FullTokenizer), ``processors`` (get_processor,
InputExample, DataFormatError), ``features`` (convert_examples_to_features), ``ofrecord``
(ensure_ofrecord_split, read_split), ``loader`` (OFRecordLoader), ``kshot`` (sample_k_shot),
``synthetic`` (the shipped synthetic datasets).
"""
