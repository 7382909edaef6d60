//! User and API key administration, shared by the first start and the `opskit user` /
//! `opskit apikey` commands.

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::Error;
use crate::auth::{hash_password, new_api_key, random_token};
use crate::model::{ApiKey, Role, User};
use crate::store::{Db, Store, now};

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Connects to the database (creating a missing SQLite file) and applies migrations.
pub async fn open(database_url: &str) -> Result<Db, Error> {
    let db = Db::connect(database_url).await?;
    db.migrate().await?;
    Ok(db)
}

/// Connects to a database that must exist (the admin commands: a typo in `--database` or another
/// working directory must not silently create an empty one) and applies migrations.
pub async fn open_existing(database_url: &str) -> Result<Db, Error> {
    let db = Db::connect_existing(database_url).await?;
    db.migrate().await?;
    Ok(db)
}

fn check_username(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "username {name:?} must be 1-64 characters: letters, digits, '_', '.', '-' or '@'"
        )))
    }
}

fn check_password(password: &SecretString) -> Result<(), Error> {
    if password.expose_secret().chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::Invalid(format!(
            "password must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

/// Creates a user.
pub async fn add_user(
    db: &Db,
    username: &str,
    password: SecretString,
    role: Role,
) -> Result<User, Error> {
    check_username(username)?;
    check_password(&password)?;
    let user = User {
        id: Uuid::now_v7(),
        username: username.to_owned(),
        password_hash: hash_password(password).await?,
        role,
        created_at: now(),
    };
    db.create_user(&user).await?;
    Ok(user)
}

/// Changes a user's password.
pub async fn set_password(db: &Db, username: &str, password: SecretString) -> Result<(), Error> {
    check_password(&password)?;
    let hash = hash_password(password).await?;
    if db.set_password(username, &hash).await? {
        Ok(())
    } else {
        Err(Error::NotFound(format!("no user named {username:?}")))
    }
}

/// Removes a user (and revokes their refresh tokens).
pub async fn remove_user(db: &Db, username: &str) -> Result<(), Error> {
    if db.delete_user(username).await? {
        Ok(())
    } else {
        Err(Error::NotFound(format!("no user named {username:?}")))
    }
}

/// Creates the `admin` user when there are no users yet. Returns the password when it was
/// generated (the caller shows it once).
pub async fn ensure_admin(
    db: &Db,
    password: Option<SecretString>,
) -> Result<Option<SecretString>, Error> {
    if db.count_users().await? > 0 {
        return Ok(None);
    }
    let (password, generated) = match password {
        Some(p) => (p, false),
        None => (SecretString::from(random_token(18)), true),
    };
    match add_user(db, "admin", password.clone(), Role::Admin).await {
        Ok(_) => Ok(generated.then_some(password)),
        // another process created it at the same moment
        Err(Error::Conflict(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates an API key; the returned secret is shown once and never stored.
pub async fn create_api_key(
    db: &Db,
    name: &str,
    role: Role,
) -> Result<(SecretString, ApiKey), Error> {
    if name.is_empty() || name.len() > 64 {
        return Err(Error::Invalid(
            "API key name must be 1-64 characters".into(),
        ));
    }
    let (secret, record) = new_api_key(name, role);
    db.create_api_key(&record).await?;
    Ok((secret, record))
}

/// Revokes an API key by id or name.
pub async fn revoke_api_key(db: &Db, id_or_name: &str) -> Result<u64, Error> {
    match db.revoke_api_key(id_or_name).await? {
        0 => Err(Error::NotFound(format!(
            "no active API key with id or name {id_or_name:?}"
        ))),
        n => Ok(n),
    }
}
