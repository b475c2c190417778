//! Plain pixel and tensor buffers: this crate stays free of any tensor library, the model crate
//! converts.

/// An interleaved image: `height` rows of `width` pixels of `channels` samples (HWC).
#[derive(Clone, PartialEq)]
pub struct Image<T> {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<T>,
}

pub type ImageU8 = Image<u8>;
pub type ImageF32 = Image<f32>;

/// The size, not the samples: a failed comparison of two frames would print megabytes.
impl<T> std::fmt::Debug for Image<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({}x{}x{})", self.width, self.height, self.channels)
    }
}

impl<T: Copy + Default> Image<T> {
    pub fn new(width: usize, height: usize, channels: usize) -> Self {
        Image {
            width,
            height,
            channels,
            data: vec![T::default(); width * height * channels],
        }
    }

    pub fn from_vec(width: usize, height: usize, channels: usize, data: Vec<T>) -> Self {
        assert_eq!(
            data.len(),
            width * height * channels,
            "image buffer does not match {width}x{height}x{channels}"
        );
        Image {
            width,
            height,
            channels,
            data,
        }
    }

    /// An image whose every pixel is `px` (`px.len()` channels).
    pub fn filled(width: usize, height: usize, px: &[T]) -> Self {
        Image::from_vec(width, height, px.len(), px.repeat(width * height))
    }

    /// One pixel's samples.
    pub fn pixel(&self, x: usize, y: usize) -> &[T] {
        let i = (y * self.width + x) * self.channels;
        &self.data[i..i + self.channels]
    }

    /// One pixel's samples, to write.
    pub fn pixel_mut(&mut self, x: usize, y: usize) -> &mut [T] {
        let i = (y * self.width + x) * self.channels;
        &mut self.data[i..i + self.channels]
    }

    /// A copy of the rectangle `[top, top+h) x [left, left+w)`.
    pub fn crop(&self, top: usize, left: usize, h: usize, w: usize) -> Self {
        assert!(
            top + h <= self.height && left + w <= self.width,
            "crop outside image"
        );
        let c = self.channels;
        let mut data = Vec::with_capacity(h * w * c);
        for y in top..top + h {
            let row = (y * self.width + left) * c;
            data.extend_from_slice(&self.data[row..row + w * c]);
        }
        Image::from_vec(w, h, c, data)
    }

    /// Keep only the first `n` channels (e.g. RGBA -> RGB).
    pub fn take_channels(&self, n: usize) -> Self {
        assert!(n <= self.channels);
        if n == self.channels {
            return self.clone();
        }
        let mut data = Vec::with_capacity(self.width * self.height * n);
        for px in self.data.chunks_exact(self.channels) {
            data.extend_from_slice(&px[..n]);
        }
        Image::from_vec(self.width, self.height, n, data)
    }

    /// Channels-first copy (CHW), the layout of the model's tensors.
    pub fn to_chw(&self) -> Vec<T> {
        let (c, hw) = (self.channels, self.width * self.height);
        let mut out = vec![T::default(); c * hw];
        for (i, px) in self.data.chunks_exact(c).enumerate() {
            for (ch, v) in px.iter().enumerate() {
                out[ch * hw + i] = *v;
            }
        }
        out
    }

    /// From a channels-first buffer.
    pub fn from_chw(width: usize, height: usize, channels: usize, chw: &[T]) -> Self {
        let hw = width * height;
        assert_eq!(chw.len(), channels * hw);
        let mut data = vec![T::default(); chw.len()];
        for ch in 0..channels {
            for i in 0..hw {
                data[i * channels + ch] = chw[ch * hw + i];
            }
        }
        Image::from_vec(width, height, channels, data)
    }
}

impl ImageU8 {
    /// An RGB image of one colour.
    pub fn filled_rgb(width: usize, height: usize, rgb: [u8; 3]) -> Self {
        Self::filled(width, height, &rgb)
    }

    /// The RGB samples of pixel (x, y) (the first three channels).
    #[inline]
    pub fn rgb(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * self.channels;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Sets the RGB samples of pixel (x, y).
    #[inline]
    pub fn put_rgb(&mut self, x: usize, y: usize, rgb: [u8; 3]) {
        let i = (y * self.width + x) * self.channels;
        self.data[i..i + 3].copy_from_slice(&rgb);
    }

    /// Samples as f32, unchanged in value (0..=255).
    pub fn to_f32(&self) -> ImageF32 {
        Image::from_vec(
            self.width,
            self.height,
            self.channels,
            self.data.iter().map(|&v| v as f32).collect(),
        )
    }
}

/// A dense f32 tensor with a row-major shape, e.g. `[C, T, H, W]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "tensor data does not match shape {shape:?}"
        );
        Tensor { shape, data }
    }

    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Tensor {
            shape,
            data: vec![0.0; n],
        }
    }
}
