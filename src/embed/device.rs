//! Which device runs the model: CPU unless a GPU feature is compiled in and asked for.

use candle_core::Device;

/// The device the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// A GPU if one was compiled in (`cuda`/`metal` features) and is present, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
    Metal,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            "metal" => Ok(Self::Metal),
            other => Err(format!(
                "unknown device `{other}` (expected auto, cpu, cuda or metal)"
            )),
        }
    }
}

/// Picks the candle device. Asking for a GPU the build lacks is an error, not a silent CPU.
pub fn select_device(choice: DeviceChoice) -> candle_core::Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => Device::new_cuda(0),
        DeviceChoice::Metal => Device::new_metal(0),
        DeviceChoice::Auto => {
            if cfg!(feature = "cuda") {
                Device::cuda_if_available(0)
            } else if cfg!(feature = "metal") {
                Device::metal_if_available(0)
            } else {
                Ok(Device::Cpu)
            }
        }
    }
}

/// Short device name for logs and `/info`.
pub fn device_name(device: &Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}
