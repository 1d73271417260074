terraform {
  # 1.11: write-only arguments (the worker's database password never reaches the state).
  required_version = ">= 1.11.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.30.0, < 8.0.0"
    }
  }
}
