"""Feature networks for FID and precision/recall: shapes, training, saving, loading, errors."""

import json

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from nvae_tfx import datasets
from nvae_tfx.data import synthetic
from nvae_tfx.evaluation import feature_networks as fn


def mnist_batch(n, seed):
    """Padded 32x32x1 synthetic digits in [0, 1] (a bar at a label-dependent row) and labels."""
    images, labels = synthetic.digits(n, seed)
    return np.pad(images / 255.0, ((0, 0), (2, 2), (2, 2)))[..., None].astype(np.float32), labels


@pytest.fixture(scope='module')
def trained():
    train, train_labels = mnist_batch(300, 0)
    eval_, eval_labels = mnist_batch(100, 1)
    model, accuracy = fn.train_digit_classifier(train, train_labels, eval_, eval_labels, epochs=10)
    return model, accuracy, eval_, eval_labels


def test_digit_classifier_learns_and_reports_its_eval_accuracy(trained):
    model, accuracy, eval_, eval_labels = trained
    assert accuracy >= 0.95
    assert accuracy == fn.classification_accuracy(model, eval_, eval_labels)
    # It was also trained on binarized digits, so binary inputs are classified as well.
    binary = datasets.binarize_some(tf.constant(eval_), 1.0).numpy()
    assert fn.classification_accuracy(model, binary, eval_labels) >= 0.95


def test_binarize_some_binarizes_the_chosen_fraction_of_images():
    images = tf.fill([400, 4, 4, 1], 0.5)
    assert np.array_equal(datasets.binarize_some(images, 0.0).numpy(), images.numpy())
    out = datasets.binarize_some(images, 0.5).numpy()
    binary = np.all((out == 0) | (out == 1), axis=(1, 2, 3))
    grey = np.all(out == 0.5, axis=(1, 2, 3))
    assert np.all(binary | grey)
    assert 0.4 < binary.mean() < 0.6


def test_digit_features_are_the_128d_penultimate_layer(trained):
    model, _, eval_, _ = trained
    network = fn.digit_classifier_features(model)
    assert network.name == fn.DIGIT_CLASSIFIER_NAME == 'mnist_classifier'
    features = network.features(eval_[:10])
    assert features.shape == (10, 128) and features.dtype == np.float32
    assert features.min() >= 0  # ReLU features
    direct = keras.Model(model.input, model.get_layer('features').output)(eval_[:10])
    np.testing.assert_allclose(features, direct, rtol=1e-5, atol=1e-6)
    # Batched over any iterable of batches: the same features, stacked in order.
    batches = (eval_[:50][i : i + 16] for i in range(0, 50, 16))
    np.testing.assert_allclose(
        network.features_of(batches), network.features(eval_[:50]), rtol=1e-5, atol=1e-6
    )


def test_digit_classifier_save_and_load(trained, tmp_path):
    model, accuracy, eval_, _ = trained
    fn.save_digit_classifier(model, str(tmp_path / 'clf'), accuracy)
    info = json.loads((tmp_path / 'clf' / 'digit_classifier.json').read_text())
    assert info == {'name': 'mnist_classifier', 'eval_accuracy': accuracy, 'feature_dim': 128}
    loaded = fn.load_digit_classifier(str(tmp_path / 'clf'))
    assert loaded.name == 'mnist_classifier' and loaded.info == info
    np.testing.assert_allclose(
        loaded.features(eval_[:8]),
        fn.digit_classifier_features(model).features(eval_[:8]),
        rtol=1e-5,
        atol=1e-6,
    )


def test_digit_classifier_errors_name_the_problem(trained, tmp_path):
    network = fn.digit_classifier_features(trained[0])
    with pytest.raises(ValueError, match=r'\[0, 1\], got values in \[0.0, 255.0\]'):
        network.features(np.arange(2 * 32 * 32, dtype=np.float32).reshape(2, 32, 32, 1) % 256)
    with pytest.raises(
        ValueError,
        match=r'\(32, 32, 1\) images \(28x28 padded by 2\), got '
        r'\(28, 28, 1\)',
    ):
        network.features(np.zeros((2, 28, 28, 1)))
    with pytest.raises(ValueError, match='non-empty NHWC batch'):
        network.features(np.zeros((32, 32)))
    with pytest.raises(ValueError, match='no image batches'):
        network.features_of([])
    missing = tmp_path / 'nothing'
    with pytest.raises(FileNotFoundError, match=f'{missing}/digit_classifier.keras: missing'):
        fn.load_digit_classifier(str(missing))


def test_inception_weights_missing_or_invalid(tmp_path):
    missing = str(tmp_path / 'inception.h5')
    with pytest.raises(
        FileNotFoundError, match=f'{missing}: .*{fn.INCEPTION_WEIGHTS_FILE}.*~/.keras/models'
    ):
        fn.load_inception_v3(missing)
    garbage = tmp_path / 'garbage.h5'
    garbage.write_bytes(b'not an HDF5 file')
    with pytest.raises(ValueError, match=f'{garbage}: not Inception-v3 weights'):
        fn.load_inception_v3(str(garbage))


def test_inception_v3_pool3_features_from_a_local_weights_file(tmp_path):
    reference = keras.applications.InceptionV3(
        include_top=False, pooling='avg', weights=None, input_shape=(299, 299, 3)
    )
    keras_file = str(tmp_path / 'inception.weights.h5')
    reference.save_weights(keras_file)
    # The file users copy (inception_v3_..._notop.h5) is in Keras' legacy HDF5 layout.
    from keras.src.legacy.saving import legacy_h5_format

    legacy_file = str(tmp_path / fn.INCEPTION_WEIGHTS_FILE)
    with h5py.File(legacy_file, 'w') as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)

    grey = np.random.RandomState(0).uniform(0, 1, (2, 8, 8, 1)).astype(np.float32)
    # What the network must compute: bilinear resize to 299, grey -> RGB, [0, 1] -> [-1, 1].
    expected = reference(tf.image.resize(np.repeat(grey, 3, -1), (299, 299)) * 2 - 1).numpy()
    for weights in (keras_file, legacy_file):
        network = fn.load_inception_v3(weights)
        assert network.name == 'inception_v3'
        features = network.features(grey)
        assert features.shape == (2, 2048)
        np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)
    # RGB input of the same grey image gives the same features.
    np.testing.assert_allclose(
        network.features(np.repeat(grey, 3, -1)), expected, rtol=1e-4, atol=1e-5
    )
