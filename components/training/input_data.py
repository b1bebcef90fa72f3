"""The Trainer's and Evaluator's tf.data input: transformed examples -> float images in [0, 1],
with NVAE's per-step randomness (dynamic binarization, random flip) where it belongs."""
import tensorflow as tf
from tfx_bsl.public import tfxio

from components import per_step_preprocessing
from components.transform import preprocessing


def to_model_images(images: tf.Tensor) -> tf.Tensor:
  """Transformed pixels (MNIST float [0, 1]; CelebA uint8 values or float) -> float32 [0, 1]."""
  images = tf.convert_to_tensor(images)
  if images.dtype.is_integer:
    return tf.cast(images, tf.float32) / 255.0
  return tf.cast(images, tf.float32)


def per_step(images: tf.Tensor, dataset: str, binarization: str, training: bool) -> tf.Tensor:
  """MNIST: a fresh binarization per use (train and eval, as NVAE) unless Transform already
  binarized; CelebA: random horizontal flip for training only."""
  if dataset == 'mnist':
    return per_step_preprocessing.dynamic_binarize(images) if binarization == 'dynamic' else images
  return per_step_preprocessing.random_flip(images) if training else images


def image_dataset(data_accessor, file_pattern, tft_output, batch_size: int, dataset: str,
                  binarization: str, training: bool, repeat: bool = True) -> tf.data.Dataset:
  """Batches of model-ready images from transformed examples read through TFX's data accessor
  (which picks the reader matching the artifact's payload and file format)."""
  options = tfxio.TensorFlowDatasetOptions(
      batch_size=batch_size, shuffle=training, drop_final_batch=training,
      num_epochs=None if repeat else 1)
  ds = data_accessor.tf_dataset_factory(file_pattern, options,
                                        tft_output.transformed_metadata.schema)
  return ds.map(lambda f: per_step(to_model_images(f[preprocessing.IMAGE]), dataset, binarization,
                                   training),
                num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
