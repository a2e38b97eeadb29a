//! Kubernetes resource quantities (`250m`, `2`, `512Mi`, `1G`, `1e3`) as
//! numbers: CPU in millicores, memory in bytes, for the capacity check.

/// The quantity in base units (cores or bytes), or None when malformed.
pub fn parse(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some(value * factor)
}

/// CPU and memory summed over something.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Resources {
    pub cpu: f64,
    pub memory: f64,
}

impl Resources {
    pub fn add(&mut self, cpu: Option<&str>, memory: Option<&str>) {
        self.cpu += cpu.and_then(parse).unwrap_or(0.0);
        self.memory += memory.and_then(parse).unwrap_or(0.0);
    }

    pub fn describe(&self) -> String {
        format!(
            "{:.2} CPU, {:.1} GiB",
            self.cpu,
            self.memory / 1024.0 / 1024.0 / 1024.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn quantities() {
        assert_eq!(parse("250m"), Some(0.25));
        assert_eq!(parse("2"), Some(2.0));
        assert_eq!(parse("512Mi"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(parse("1G"), Some(1e9));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("12x"), None);
    }
}
