"""A folder of face images through ExampleGen, validation and Transform: the hash split
recorded, bad files skipped and listed, each image cropped and resized as PIL does."""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from nvae_tfx.data import hash_split, synthetic
from nvae_tfx.options import SourceOptions, TransformOptions
from tests.support.pipeline_helpers import decoded_ids, read_transformed, run_outputs, run_pipeline


def face_reference(path, crop, size):
    """The crop and an antialiased resize with PIL, from TF's decoding of the file."""
    decoded = tf.io.decode_image(open(path, 'rb').read(), channels=3).numpy()
    return np.asarray(Image.fromarray(decoded).crop(crop).resize((size, size), Image.BILINEAR))


def test_face_folder_through_transform_skipping_bad_files(tmp_path):
    data_dir = tmp_path / 'lfw'
    names = synthetic.write_face_folder(str(data_dir), count=24)
    corrupt, wrong_size = names[0], names[2]  # a JPEG and a PNG
    (data_dir / corrupt).write_bytes((data_dir / corrupt).read_bytes()[:400])
    (data_dir / wrong_size).write_bytes(synthetic.png_bytes(synthetic.face(5, (200, 200, 3))))
    source = SourceOptions(
        dataset='faces', data_dir=str(data_dir), on_corrupt='skip', eval_fraction=0.25
    ).resolved()
    crop = (40, 40, 210, 210)
    outputs = run_outputs(
        run_pipeline(
            tmp_path, source, TransformOptions(dataset='faces', image_size=32, crop=crop).resolved()
        )
    )
    examples = outputs['ImageExampleGen'][1]['examples'][0]
    props = examples.custom_properties
    assert props['split_rule'].string_value == hash_split.rule('folder', 0.25)
    assert props['split_eval_fraction'].double_value == 0.25
    assert props['num_skipped'].int_value == 2
    report = props['dataset_source_report'].string_value
    skipped = ''.join(
        open(os.path.join(report, f'{split}-skipped.tsv')).read() for split in ('train', 'eval')
    )
    assert f'{data_dir}/{corrupt}\tcorrupt or non-image file' in skipped
    assert f'{data_dir}/{wrong_size}\timage is 200x200x3 (HxWxC), expected 250x250x3' in skipped

    good = [n for n in names if n not in (corrupt, wrong_size)]
    for split in ('train', 'eval'):
        expected = {n for n in good if hash_split.split_of(n, 0.25) == split}
        assert props[f'num_examples_{split}'].int_value == len(expected) > 0
        got = read_transformed(outputs, split)
        assert set(decoded_ids(got['id'])) == expected
        assert got['image'].shape == (len(expected), 32, 32, 3)
        for image, name in zip(got['image'], decoded_ids(got['id']), strict=True):
            reference = face_reference(data_dir / name, crop, 32).astype(np.int64)
            # TF's antialiased bilinear and PIL's bilinear filter differ by at most a level.
            assert np.abs(image - reference).max() <= 1
            assert np.abs(image - reference).mean() < 0.1
