//! Fashion-MNIST from the fetched IDX files (Debian's `dataset-fashion-mnist`).
//!
//! IDX: gzip, a big-endian u32 magic (0x803 for images, 0x801 for labels), one big-endian u32
//! per dimension, then raw u8 in row-major order. Pixels are scaled to [0, 1] and standardised
//! with the training set's mean 0.2860 and standard deviation 0.3530.

use std::io::Read;
use std::path::Path;

use burn::prelude::{Backend, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use super::Error;
use crate::assets::{Asset, Cache};
use crate::models::ImageBatch;

/// Mean of the training pixels scaled to [0, 1].
pub const MEAN: f32 = 0.2860;
/// Standard deviation of the training pixels scaled to [0, 1].
pub const STD: f32 = 0.3530;
/// The ten classes, in label order.
pub const CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Which of the two files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The 60 000 training images.
    Train,
    /// The 10 000 test images.
    Test,
}

/// Labelled square grey images, standardised.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    /// `len × side × side` standardised pixels.
    pub pixels: Vec<f32>,
    /// One label in 0..10 per image.
    pub labels: Vec<u8>,
    /// Image side.
    pub side: usize,
}

/// Loads a split from the cache, verifying the asset first.
///
/// # Errors
/// [`Error::Asset`] when the files are missing or corrupt (run `geosharp fetch`);
/// [`Error::Format`] for a malformed IDX file.
pub fn load(cache: &Cache, split: Split) -> Result<Images, Error> {
    cache.verify(Asset::FashionMnist)?;
    let dir = cache.fashion_mnist();
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let images = read_idx(&dir.join(format!("{prefix}-images-idx3-ubyte.gz")), 0x803)?;
    let labels = read_idx(&dir.join(format!("{prefix}-labels-idx1-ubyte.gz")), 0x801)?;
    let (dims, pixels) = images;
    let (label_dims, labels) = labels;
    if dims.len() != 3 || dims[1] != dims[2] || label_dims != [dims[0]] {
        return Err(Error::Format {
            path: dir,
            reason: format!(
                "image dimensions {dims:?} do not match label dimensions {label_dims:?}"
            ),
        });
    }
    Ok(Images {
        pixels: pixels
            .iter()
            .map(|&p| (f32::from(p) / 255.0 - MEAN) / STD)
            .collect(),
        labels,
        side: dims[1],
    })
}

/// Reads a gzipped IDX file of u8 values: its dimensions and data.
fn read_idx(path: &Path, magic: u32) -> Result<(Vec<usize>, Vec<u8>), Error> {
    let format = |reason: String| Error::Format {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .map_err(|e| format(format!("not a gzip stream: {e}")))?;
    let word = |i: usize| -> Result<u32, Error> {
        bytes
            .get(4 * i..4 * i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format("truncated header".into()))
    };
    let found = word(0)?;
    if found != magic {
        return Err(format(format!("magic {found:#x}, expected {magic:#x}")));
    }
    let rank = (magic & 0xff) as usize;
    let dims: Vec<usize> = (1..=rank)
        .map(|i| word(i).map(|d| d as usize))
        .collect::<Result<_, _>>()?;
    let start = 4 * (rank + 1);
    let len: usize = dims.iter().product();
    if bytes.len() != start + len {
        return Err(format(format!(
            "{} data bytes for dimensions {dims:?} ({len} expected)",
            bytes.len().saturating_sub(start)
        )));
    }
    bytes.drain(..start);
    Ok((dims, bytes))
}

impl Images {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Images {
        let area = self.side * self.side;
        Images {
            pixels: indices
                .iter()
                .flat_map(|&i| self.pixels[i * area..(i + 1) * area].iter().copied())
                .collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            side: self.side,
        }
    }

    /// A seeded random subset of `n` images (all of them if `n ≥ len`).
    pub fn subset(&self, n: usize, seed: u64) -> Images {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        order.truncate(n.min(self.len()));
        self.select(&order)
    }

    /// These images with a fraction `noise` of their labels replaced by a uniformly drawn
    /// *other* class (the usual label-noise corruption of generalisation studies): exactly
    /// round(noise · len) images, chosen by `seed`, get a wrong label. `noise` is clamped to
    /// [0, 1]; 0 returns the images unchanged.
    pub fn with_label_noise(mut self, noise: f64, seed: u64) -> Images {
        // One of the nine other classes, uniformly.
        super::corrupt_labels(&mut self.labels, noise, seed, |label, rng| {
            (label + rng.random_range(1..CLASSES.len() as u8)) % CLASSES.len() as u8
        });
        self
    }

    /// The batch of images at `indices`, on `device`.
    pub fn batch<B: Backend>(&self, indices: &[usize], device: &B::Device) -> ImageBatch<B> {
        let picked = self.select(indices);
        let n = indices.len();
        ImageBatch {
            images: Tensor::from_data(
                TensorData::new(picked.pixels, [n, self.side, self.side]),
                device,
            ),
            labels: Tensor::<B, 1, Int>::from_data(
                TensorData::new(
                    picked
                        .labels
                        .iter()
                        .map(|&l| i64::from(l))
                        .collect::<Vec<_>>(),
                    [n],
                ),
                device,
            ),
            indices: indices.to_vec(),
        }
    }

    /// The sample indices split into batches of at most `size`, shuffled by `rng` when given.
    pub fn batch_indices(&self, size: usize, rng: Option<&mut StdRng>) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        if let Some(rng) = rng {
            order.shuffle(rng);
        }
        order.chunks(size.max(1)).map(<[usize]>::to_vec).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gz(path: &Path, bytes: &[u8]) {
        let file = std::fs::File::create(path).unwrap();
        let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap();
    }

    #[test]
    fn label_noise_changes_exactly_its_share_of_labels_to_other_classes() {
        let n = 1000;
        let clean = Images {
            pixels: vec![0.0; n * 4],
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
            side: 2,
        };
        let noisy = clean.clone().with_label_noise(0.25, 3);
        let changed = clean
            .labels
            .iter()
            .zip(&noisy.labels)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(changed, 250, "every corrupted label is a different class");
        assert!(noisy.labels.iter().all(|&l| l < 10));
        assert_eq!(noisy, clean.clone().with_label_noise(0.25, 3), "seeded");
        assert_ne!(noisy, clean.clone().with_label_noise(0.25, 4));
        assert_eq!(clean.clone().with_label_noise(0.0, 3), clean);
        // The wrong classes are spread over all nine alternatives.
        let mut shifts = [0usize; 10];
        for (a, b) in clean.labels.iter().zip(&noisy.labels) {
            shifts[usize::from((b + 10 - a) % 10)] += 1;
        }
        assert_eq!(shifts[0], 750);
        assert!(shifts[1..].iter().all(|&c| c > 10), "{shifts:?}");
    }

    #[test]
    fn reads_idx_files_and_names_what_is_wrong_with_bad_ones() {
        let dir = std::env::temp_dir().join(format!("geosharp-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // two 2×2 images
        let mut good = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        good.extend([0, 255, 10, 20, 30, 40, 50, 60]);
        let path = dir.join("good.gz");
        gz(&path, &good);
        let (dims, data) = read_idx(&path, 0x803).unwrap();
        assert_eq!(dims, vec![2, 2, 2]);
        assert_eq!(data, vec![0, 255, 10, 20, 30, 40, 50, 60]);

        let e = read_idx(&path, 0x801).unwrap_err().to_string();
        assert!(e.contains("magic 0x803, expected 0x801"), "{e}");
        let path = dir.join("short.gz");
        gz(&path, &good[..good.len() - 1]);
        let e = read_idx(&path, 0x803).unwrap_err().to_string();
        assert!(
            e.contains("7 data bytes") && e.contains("geosharp fetch"),
            "{e}"
        );
        let path = dir.join("plain");
        std::fs::write(&path, &good).unwrap();
        let e = read_idx(&path, 0x803).unwrap_err().to_string();
        assert!(e.contains("gzip"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn subsets_are_seeded_and_batches_keep_their_indices() {
        let images = Images {
            pixels: (0..5 * 4).map(|i| i as f32).collect(),
            labels: vec![0, 1, 2, 3, 4],
            side: 2,
        };
        assert_eq!(images.subset(3, 7), images.subset(3, 7));
        assert_eq!(images.subset(9, 7).len(), 5);
        let picked = images.select(&[4, 1]);
        assert_eq!(picked.labels, vec![4, 1]);
        assert_eq!(
            picked.pixels,
            vec![16.0, 17.0, 18.0, 19.0, 4.0, 5.0, 6.0, 7.0]
        );
        let batches = images.batch_indices(2, None);
        assert_eq!(batches, vec![vec![0, 1], vec![2, 3], vec![4]]);
    }
}
