//! Whole Stage A runs with fake models (no ONNX Runtime needed): the refusals, progress and
//! cancellation, frame-rate resampling and keypoints restricted to the subject mask.

mod refusals {
    use scail_stagea::sam3::Segmenter;
    use scail_stagea::stagea::{
        run_stage_a, run_stage_a_with, Clip, DrivingType, StageAConfig, StageAInputs, StageAModels,
        StageAProgress, SubjectType,
    };
    use scail_stagea::track::SegDetection;
    use scail_stagea::Mode;
    use scail_stagea::{Mask, RgbImage, StageAError};

    /// Finds one subject in the left half of bright frames, nothing in dark ones.
    struct Fake;
    impl Segmenter for Fake {
        fn detect(&mut self, f: &RgbImage) -> Result<Vec<SegDetection>, StageAError> {
            if f.data[0] > 128 {
                let (w, h) = (f.width as u32, f.height as u32);
                Ok(vec![SegDetection::from_mask(
                    Mask::from_rect(w, h, 0, 0, w / 2, h),
                    0.9,
                )])
            } else {
                Ok(vec![])
            }
        }
    }

    fn inputs(reference: [u8; 3], driving: [u8; 3]) -> StageAInputs {
        StageAInputs {
            reference: RgbImage::filled_rgb(32, 16, reference),
            reference_alpha: None,
            driving: Clip {
                frames: vec![RgbImage::filled_rgb(32, 16, driving); 3],
                fps: 16.0,
            },
            reference_mask: None,
            driving_mask: None,
            pose_video: None,
        }
    }

    fn models() -> StageAModels {
        StageAModels {
            segmenter: Some(Box::new(Fake)),
            pose: None,
        }
    }

    #[test]
    fn pose_driving_is_refused_for_animals() {
        let cfg = StageAConfig::new(Mode::Animation, DrivingType::Pose, SubjectType::Animal);
        let e = run_stage_a(&cfg, &inputs([255; 3], [255; 3]), &mut models()).unwrap_err();
        assert!(matches!(e, StageAError::PoseForAnimal));
        assert!(e.to_string().contains("subject_type=animal"));
        let ok = StageAConfig::new(Mode::Animation, DrivingType::EndToEnd, SubjectType::Animal);
        assert!(ok.prompts().contains(&"dog".to_string()));
        let out = run_stage_a(&ok, &inputs([255; 3], [255; 3]), &mut models()).unwrap();
        assert_eq!(out.num_subjects, 1);
        assert_eq!(out.driving_mask.len(), 3);
    }

    #[test]
    fn no_subject_is_a_named_error() {
        let cfg = StageAConfig::new(Mode::Animation, DrivingType::EndToEnd, SubjectType::Human);
        let e = run_stage_a(&cfg, &inputs([255; 3], [0; 3]), &mut models()).unwrap_err();
        assert!(
            matches!(
                e,
                StageAError::NoSubject {
                    what: "driving video",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("human, character"));
        // The frames searched are named, from the clip's own length.
        let n = inputs([255; 3], [0; 3]).driving.frames.len();
        assert!(
            e.to_string().contains(&format!("frames 0–{}", n - 1)),
            "{e}"
        );
        let e = run_stage_a(&cfg, &inputs([0; 3], [255; 3]), &mut models()).unwrap_err();
        assert!(
            matches!(
                e,
                StageAError::NoSubject {
                    what: "reference image",
                    ..
                }
            ),
            "{e}"
        );
        // Without a segmenter or masks, the error says what is missing.
        let e = run_stage_a(
            &cfg,
            &inputs([255; 3], [255; 3]),
            &mut StageAModels::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no segmentation model"), "{e}");
    }

    /// Records every report; cancels once `stop_at` frames are done.
    struct Recorder {
        seen: Vec<(&'static str, usize, usize)>,
        stop_at: Option<usize>,
    }
    impl StageAProgress for Recorder {
        fn frame(
            &mut self,
            step: &'static str,
            done: usize,
            total: usize,
        ) -> Result<(), StageAError> {
            self.seen.push((step, done, total));
            match self.stop_at {
                Some(n) if done >= n => Err(StageAError::Cancelled),
                _ => Ok(()),
            }
        }
    }

    /// Counts `detect` calls.
    struct Counting(std::rc::Rc<std::cell::Cell<usize>>);
    impl Segmenter for Counting {
        fn detect(&mut self, f: &RgbImage) -> Result<Vec<SegDetection>, StageAError> {
            self.0.set(self.0.get() + 1);
            Fake.detect(f)
        }
    }

    #[test]
    fn segmentation_reports_every_frame_and_stops_when_cancelled() {
        let cfg = StageAConfig::new(Mode::Animation, DrivingType::EndToEnd, SubjectType::Human);
        let mut rec = Recorder {
            seen: Vec::new(),
            stop_at: None,
        };
        run_stage_a_with(&cfg, &inputs([255; 3], [255; 3]), &mut models(), &mut rec).unwrap();
        let want: Vec<_> = (0..=3).map(|d| ("segmentation", d, 3)).collect();
        assert_eq!(rec.seen, want);

        // Cancelled after the second frame: no third detection, and Stage A says so.
        let calls = std::rc::Rc::new(std::cell::Cell::new(0));
        let mut counting = StageAModels {
            segmenter: Some(Box::new(Counting(calls.clone()))),
            pose: None,
        };
        let mut rec = Recorder {
            seen: Vec::new(),
            stop_at: Some(2),
        };
        let e = run_stage_a_with(&cfg, &inputs([255; 3], [255; 3]), &mut counting, &mut rec)
            .unwrap_err();
        assert!(matches!(e, StageAError::Cancelled), "{e}");
        assert_eq!(calls.get(), 2);
        assert_eq!(rec.seen.last(), Some(&("segmentation", 2, 3)));
    }
}

mod timing_and_pose_masks {
    use scail_stagea::dwpose::{Keypoint, WholeBody};
    use scail_stagea::stagea::{resample_clip, restrict_to_mask, Clip};
    use scail_stagea::{Mask, RgbImage, StageAError};

    fn numbered(n: usize) -> Vec<RgbImage> {
        (0..n)
            .map(|i| RgbImage::filled_rgb(2, 2, [i as u8, 0, 0]))
            .collect()
    }

    #[test]
    fn resampling_takes_the_nearest_frame_in_time() {
        // 30 fps, 106 frames (3.533 s) -> 57 frames at 16 fps: frame k is time k/16.
        let clip = Clip {
            frames: numbered(106),
            fps: 30.0,
        };
        let out = resample_clip(&clip, 57, 16.0, "driving").unwrap();
        assert_eq!(out.len(), 57);
        for (k, f) in out.iter().enumerate() {
            let want = ((k as f64 / 16.0) * 30.0).round() as usize;
            assert_eq!(f.data[0] as usize, want.min(105), "frame {k}");
        }
        // Same rate and length: identity.
        let same = Clip {
            frames: numbered(10),
            fps: 16.0,
        };
        let out = resample_clip(&same, 10, 16.0, "mask").unwrap();
        assert!(out.iter().enumerate().all(|(i, f)| f.data[0] as usize == i));
        // 8 fps mask video, 20 frames (2.5 s) cannot cover 65 frames at 16 fps (4.06 s).
        let short = Clip {
            frames: numbered(20),
            fps: 8.0,
        };
        let e = resample_clip(&short, 65, 16.0, "driving mask video").unwrap_err();
        assert!(matches!(e, StageAError::TooShort { got: 20, .. }));
        assert!(
            e.to_string().contains("2.500 s") && e.to_string().contains("4.062 s"),
            "{e}"
        );
    }

    #[test]
    fn keypoints_away_from_the_subject_mask_are_dropped() {
        let mask = Mask::from_rect(100, 100, 20, 20, 40, 80);
        let kp = |x: f32, y: f32| Keypoint { x, y, score: 0.9 };
        let mut body = WholeBody {
            keypoints: vec![
                kp(30.0, 50.0),
                kp(41.0, 50.0),
                kp(60.0, 50.0),
                kp(-5.0, 10.0),
            ],
        };
        restrict_to_mask(&mut body, &mask);
        let s: Vec<f32> = body.keypoints.iter().map(|k| k.score).collect();
        // Inside, within 2 px (2% of 100) of the edge, far away, outside the frame.
        assert_eq!(s, vec![0.9, 0.9, 0.0, 0.0]);
    }
}
